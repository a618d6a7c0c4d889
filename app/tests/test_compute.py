from __future__ import annotations

import pytest

from fastapi_stack.compute import count_primes


@pytest.mark.parametrize(
    ("n", "count", "largest"),
    [
        (0, 0, None),
        (1, 0, None),
        (2, 1, 2),
        (3, 2, 3),
        (4, 2, 3),
        (30, 10, 29),
        (7919, 1000, 7919),
        (100_000, 9592, 99991),
    ],
)
def test_count_primes(n: int, count: int, largest: int | None) -> None:
    result = count_primes(n)

    assert result.n == n
    assert result.prime_count == count
    assert result.largest_prime == largest


def test_count_primes_matches_trial_division() -> None:
    def is_prime(k: int) -> bool:
        return k >= 2 and all(k % d for d in range(2, int(k**0.5) + 1))

    for n in range(200):
        assert count_primes(n).prime_count == sum(is_prime(k) for k in range(n + 1)), n
