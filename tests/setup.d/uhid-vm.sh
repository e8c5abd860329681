#!/usr/bin/env bash
# Boot files for the /dev/uhid tests (tests/e2e/test_uhid_vm.py): a Debian kernel and a busybox
# initramfs in $VMDIR (default /tmp/fidoemu-vm), made with apt only. Idempotent.
set -euo pipefail
bash "$(dirname "$0")/../vm/setup-vm.sh"
