#!/usr/bin/env bash
# Build the Debian 12 base image that every local image starts from, with
# debootstrap and the Debian mirror this machine already uses, because no
# container registry may be reachable from the control node.
#
# Usage: images/debian/build.sh IMAGE_REFERENCE [MIRROR]
set -euo pipefail

image=${1:?usage: build.sh IMAGE_REFERENCE [MIRROR]}
mirror=${2:-}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "Image $image is present; nothing to build."
  exit 0
fi

if [[ -z "$mirror" ]]; then
  # Take the first Debian archive URI from the apt sources of this machine,
  # in either the deb822 (.sources) or the one-line (.list) format.
  mirror=$(
    { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
      grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
    } | grep -v -- '-security' | head -n 1
  ) || true
fi
if [[ -z "$mirror" ]]; then
  echo "No Debian mirror found in /etc/apt/sources.list*: pass one as the second argument." >&2
  exit 2
fi

rootfs=$(mktemp -d /var/tmp/fastapi-stack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "Bootstrapping Debian 12 from $mirror into $rootfs"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror"

# Keep images small: apt installs no recommended packages and keeps no package lists.
cat >"$rootfs/etc/apt/apt.conf.d/90fastapi-stack" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CONF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb

tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$image"
echo "Imported $image"
