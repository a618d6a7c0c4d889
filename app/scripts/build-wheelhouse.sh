#!/usr/bin/env bash
# Fill OUTDIR with the wheels that the image build installs offline (pip --no-index):
# every pinned runtime dependency from requirements.txt as a binary wheel for CPython 3.11.2
# (Debian 12's python3) on manylinux, and a wheel of this package.
#
# Usage: scripts/build-wheelhouse.sh OUTDIR
#
# Environment:
#   PYTHON       interpreter whose pip downloads and builds (default: python3; pip >= 22.2)
#   WHEEL_ARCH   target CPU architecture, x86_64 or aarch64 (default: uname -m)
#
# The run is skipped when OUTDIR/.stamp contains the checksum of the current inputs
# (requirements.txt, pyproject.toml, README.md, src/, this script and the target), so the
# script is cheap to call on every build. Downloading needs the package index; building the
# package's wheel also fetches its build backend (hatchling) from the index.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

app_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$1"
python="${PYTHON:-python3}"
arch="${WHEEL_ARCH:-$(uname -m)}"
python_version="3.11.2"

case "$arch" in
    x86_64 | aarch64) ;;
    *)
        echo "$0: unsupported WHEEL_ARCH '$arch'; use x86_64 or aarch64" >&2
        exit 2
        ;;
esac

# manylinux2014 is the alias of manylinux_2_17. Debian 12 has glibc 2.36, so wheels for
# glibc 2.28 run there too.
platform_args=(
    --platform "manylinux2014_${arch}"
    --platform "manylinux_2_17_${arch}"
    --platform "manylinux_2_28_${arch}"
)
target_args=(
    --only-binary=:all:
    --python-version "$python_version"
    --implementation cp
    --abi cp311
    "${platform_args[@]}"
)

inputs_checksum() {
    {
        echo "python=${python_version} arch=${arch}"
        cd "$app_dir"
        find requirements.txt pyproject.toml README.md scripts/build-wheelhouse.sh src \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
            LC_ALL=C sort -z |
            xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
stamp="$out_dir/.stamp"
checksum="$(inputs_checksum)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$checksum" ]]; then
    echo "wheelhouse $out_dir is up to date"
    exit 0
fi

echo "building wheelhouse in $out_dir for CPython $python_version on $arch"
rm -f "$stamp" "$out_dir"/*.whl

# pip evaluates environment markers against the interpreter that runs it, not against
# --python-version. A marker such as `python_full_version < "3.11.3"` (async-timeout) would
# then drop a wheel that the image needs. requirements.txt pins every package, so the markers
# are stripped and each line is downloaded without dependencies. The image install evaluates
# the markers against its own interpreter.
unmarked="$(mktemp)"
trap 'rm -f "$unmarked"' EXIT
sed -e 's/[[:space:]]*;.*$//' -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' \
    "$app_dir/requirements.txt" >"$unmarked"

"$python" -m pip download --quiet --no-deps --dest "$out_dir" "${target_args[@]}" \
    --requirement "$unmarked"

# Check that the downloaded wheels are a complete dependency closure for the target.
"$python" -m pip install --quiet --dry-run --ignore-installed --no-index \
    --find-links "$out_dir" --target "$out_dir/.resolve-check" "${target_args[@]}" \
    --requirement "$app_dir/requirements.txt"
rm -rf "$out_dir/.resolve-check"

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out_dir" "$app_dir"

echo "$checksum" >"$stamp"
echo "wheelhouse $out_dir contains $(find "$out_dir" -maxdepth 1 -name '*.whl' | wc -l) wheels"
