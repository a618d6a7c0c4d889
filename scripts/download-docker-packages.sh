#!/usr/bin/env bash
# Download Debian 12's Docker packages and every dependency that a minimal
# host lacks into OUTPUT_DIR, for the docker role's "files" mode on hosts with
# no network access. Run it where Debian's archive is reachable. It resolves
# the dependencies inside a container of IMAGE, a minimal Debian 12 system.
#
# Usage: scripts/download-docker-packages.sh OUTPUT_DIR [IMAGE]
set -euo pipefail

out=${1:?usage: download-docker-packages.sh OUTPUT_DIR [IMAGE]}
image=${2:-fastapi-stack/host:12}
packages=(docker.io containerd runc python3-requests)

if compgen -G "$out/docker.io_*.deb" >/dev/null; then
  echo "Packages are present in $out; nothing to download."
  exit 0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
docker run --rm --volume "$out:/out" "$image" bash -euo pipefail -c '
  mkdir -p /out/partial
  apt-get update -qq
  apt-get install --download-only --yes -qq -o Dir::Cache::archives=/out "$@"
  rm -rf /out/partial /out/lock
' download "${packages[@]}"
echo "Downloaded $(find "$out" -name '*.deb' | wc -l) packages to $out"
