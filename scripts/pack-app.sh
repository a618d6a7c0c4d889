#!/usr/bin/env bash
# Pack the app's build context (app/ sources and the wheelhouse) into a
# reproducible tar and print its path. The file name carries the hash of the
# content, so the same sources always give the same name and image tag.
# It first brings the wheelhouse up to date with app/scripts/build-wheelhouse.sh,
# which reads PYTHON. That script's messages go to standard error, so standard
# output contains only the path.
#
# Usage: scripts/pack-app.sh OUTPUT_DIR WHEELHOUSE_DIR
set -euo pipefail

out=${1:?usage: pack-app.sh OUTPUT_DIR WHEELHOUSE_DIR}
wheelhouse=${2:?usage: pack-app.sh OUTPUT_DIR WHEELHOUSE_DIR}
app=$(cd "$(dirname "$0")/../app" && pwd)

"$app/scripts/build-wheelhouse.sh" "$wheelhouse" >&2

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/context"
cp -r "$app/Dockerfile" "$app/.dockerignore" "$app/pyproject.toml" "$app/requirements.txt" "$app/src" "$stage/context/"
[[ -f "$app/README.md" ]] && cp "$app/README.md" "$stage/context/"
cp -r "$wheelhouse" "$stage/context/wheelhouse"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode='u+rw,go+r,go-w' \
  --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
  -C "$stage/context" -cf "$stage/app.tar" .

hash=$(sha256sum "$stage/app.tar" | cut -c1-16)
mkdir -p "$out"
if [[ ! -e "$out/app-$hash.tar" ]]; then
  mv "$stage/app.tar" "$out/app-$hash.tar"
fi
echo "$out/app-$hash.tar"
