#!/usr/bin/env bash
# Install and start what the control node needs on Debian 12 for the sandbox
# and the tests: Docker Engine (Debian's docker.io), debootstrap for the base
# image, redis-server for the app's tests, python3-venv, and wrk for `make bench`.
# Safe to run again.
set -euo pipefail

packages=(docker.io debootstrap redis-server python3-venv curl wrk)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Missing Debian packages: ${missing[*]}. Run this script as root, or install them with apt-get." >&2
    exit 1
  fi
  echo "Installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

# Without systemd as PID 1 (a CI container or VM) dockerd is started directly.
if [[ "$(ps -p 1 -o comm=)" == systemd ]]; then
  systemctl enable --now docker
else
  echo "Starting dockerd in the background (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 30); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "Docker Engine did not start within 30 s; see /var/log/dockerd.log." >&2
exit 1
