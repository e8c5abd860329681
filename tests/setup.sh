#!/usr/bin/env bash
# Prepares a fresh Debian machine for the whole test suite, idempotently: the Python package
# with its test extra, and the Debian packages behind the real-component tests (a qemu guest
# kernel for /dev/uhid, libfido2's tools and OpenSSH inside it, Chromium for the browser
# bridge, PostgreSQL for the sync cloud). Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

APT_PACKAGES=(qemu-system-x86 busybox-static fido2-tools kmod openssh-client chromium postgresql)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python -m pip install -q -e '.[test]'

for hook in tests/setup.d/*.sh; do
  [ -e "$hook" ] || continue
  echo "tests/setup.sh: $hook"
  bash "$hook"
done
