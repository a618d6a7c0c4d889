"""Command line: ``python -m request_loop URL --connect ADDRESS:PORT --ca FILE``.

Requests run one after another until ``--seconds`` pass or ``--stop-file``
appears. Each request opens a new TLS connection by default, so a certificate
change is seen at once, and ``--keep-alive`` reuses one connection instead. The
result is one JSON line: requests sent, failed, the failure reasons and the
serial numbers of the certificates seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from request_loop.loop import LoopConfig, run_loop


def parse_args(argv: list[str]) -> LoopConfig:
    parser = argparse.ArgumentParser(prog="request_loop", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="https URL, whose host name is sent as SNI and Host")
    parser.add_argument(
        "--connect",
        metavar="ADDRESS:PORT",
        help="address to connect to instead of resolving the URL's host",
    )
    parser.add_argument("--ca", type=Path, required=True, help="CA certificate file (PEM)")
    parser.add_argument("--seconds", type=float, default=30.0, help="maximum run time in seconds")
    parser.add_argument("--stop-file", type=Path, help="stop as soon as this file exists")
    parser.add_argument("--timeout", type=float, default=5.0, help="timeout per request in seconds")
    parser.add_argument("--keep-alive", action="store_true", help="reuse one connection")
    args = parser.parse_args(argv)
    return LoopConfig(
        url=args.url,
        connect=args.connect,
        ca_file=args.ca,
        seconds=args.seconds,
        stop_file=args.stop_file,
        timeout=args.timeout,
        keep_alive=args.keep_alive,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_loop(config)
    print(json.dumps(result.as_dict(), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
