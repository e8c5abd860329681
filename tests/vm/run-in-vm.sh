#!/usr/bin/env bash
# Usage: tests/vm/run-in-vm.sh 'shell commands'        (as root, after tests/vm/setup-vm.sh)
#
# Runs the commands as root in a throwaway qemu guest (TCG by default, 1 vCPU) whose / is the
# host's / read-only with writes kept in guest RAM, so the checkout, Python and its packages are
# at the same paths. The guest has /dev/uhid and hidraw. The commands start in the current directory
# with the caller's PATH (and VIRTUAL_ENV); $XFER (default: a fresh temp dir, no spaces) is
# shared read-write for artifacts. Guest console -> stdout. Exit code: the commands' exit
# code, or 125 when the guest gave none (boot failure or timeout after $VM_TIMEOUT seconds).
#
# FIDOEMU_VM_ACCEL=kvm (opt-in) runs the guest under KVM instead of TCG software emulation.
# TCG is the default because it works everywhere, including CI machines that are themselves
# VMs: on PVM hosts (paravirtual KVM, e.g. nested Firecracker-style VMs) /dev/kvm exists but a
# stock kernel hangs or dies with "emulation failure" under it. On a bare-metal or VMX/SVM host
# KVM boots and runs the guest much faster. FIDOEMU_VM_DRY_RUN=1 prints the qemu command only.
set -uo pipefail
VMDIR=${VMDIR:-/tmp/fidoemu-vm}
[ $# -eq 1 ] || { echo "usage: $0 'commands'" >&2; exit 2; }
case "${FIDOEMU_VM_ACCEL:-tcg}" in
  tcg) ACCEL=(-accel tcg -cpu max) ;;
  kvm) ACCEL=(-accel kvm -cpu host) ;;
  *) echo "run-in-vm: FIDOEMU_VM_ACCEL must be tcg (default) or kvm" >&2; exit 2 ;;
esac
DRY_RUN=${FIDOEMU_VM_DRY_RUN:-}
if [ "${FIDOEMU_VM_ACCEL:-tcg}" = kvm ] && [ -z "$DRY_RUN" ] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  echo "run-in-vm: FIDOEMU_VM_ACCEL=kvm but /dev/kvm is not usable; unset it to use TCG" >&2
  exit 125
fi
if [ -n "$DRY_RUN" ]; then XFER=${XFER:-/tmp/fidoemu-xfer.DRYRUN}; fi
XFER=${XFER:-$(mktemp -d /tmp/fidoemu-xfer.XXXXXX)}
case "$XFER" in *' '*) echo "run-in-vm: XFER must not contain spaces" >&2; exit 2 ;; esac
QEMU=(qemu-system-x86_64 "${ACCEL[@]}" -M q35 -smp 1 -m "${VM_MEM:-1024}"
  -display none -nodefaults -no-user-config -no-reboot
  -chardev file,id=console,path=/proc/self/fd/1,append=on -serial chardev:console
  -kernel "$VMDIR/vmlinux" -initrd "$VMDIR/initramfs.cpio.gz"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 fidoemu.xfer=$XFER"
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  -virtfs "local,path=$XFER,mount_tag=xfer,security_model=none,multidevs=remap")
if [ -n "$DRY_RUN" ]; then
  printf '%q ' "${QEMU[@]}"; echo
  exit 0
fi
for file in vmlinux initramfs.cpio.gz; do
  [ -s "$VMDIR/$file" ] || { echo "run-in-vm: $VMDIR/$file missing; run tests/vm/setup-vm.sh" >&2; exit 125; }
done
mkdir -p "$XFER"
rm -f "$XFER/rc"
# Python under TCG spends seconds compiling every module it imports when no bytecode cache
# exists (CI sets PYTHONDONTWRITEBYTECODE, so none does). Compile what the guest imports on the
# host, into a cache beside the boot files, and point the guest at it; the repo is not touched.
PYCACHE="$VMDIR/pycache"
if command -v python3 >/dev/null; then
  PYTHONPYCACHEPREFIX="$PYCACHE" python3 - "${GUEST_CWD:-$PWD}" <<'PY' || echo "run-in-vm: bytecode precompilation failed (the guest will be slower)" >&2
import compileall, importlib.util, os, sys
roots = [os.path.join(sys.argv[1], name) for name in ("authenticator", "transports", "tests")]
for name in ("fido2", "cbor2", "cryptography", "pytest", "_pytest", "pluggy", "iniconfig",
             "packaging", "hypothesis", "attr", "sortedcontainers", "webauthn", "asn1crypto"):
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations:
        roots += list(spec.submodule_search_locations)
for root in roots:
    if os.path.isdir(root):
        compileall.compile_dir(root, quiet=2, workers=0)
PY
fi
{
  printf 'export PATH=%q XFER=%q PYTHONPYCACHEPREFIX=%q\n' "$PATH" "$XFER" "$PYCACHE"
  [ -n "${VIRTUAL_ENV:-}" ] && printf 'export VIRTUAL_ENV=%q\n' "$VIRTUAL_ENV"
  for name in HYPOTHESIS_PROFILE CI FIDOEMU_VM_VERBOSE; do
    [ -n "${!name:-}" ] && printf 'export %s=%q\n' "$name" "${!name}"
  done
  printf 'cd %q || exit 125\n' "${GUEST_CWD:-$PWD}"
  printf '%s\n' "$1"
} > "$XFER/cmd.sh"
# The console goes to a file chardev on our stdout (`-serial stdio` fails when stdin is
# closed, as in CI); `| cat` keeps qemu's reopened fd from writing at its own offset.
timeout --kill-after=10 "${VM_TIMEOUT:-600}" "${QEMU[@]}" < /dev/null | cat
qemu_rc=${PIPESTATUS[0]}
if [ -f "$XFER/rc" ]; then
  exit "$(cat "$XFER/rc")"
fi
echo "run-in-vm: the guest gave no exit code (qemu/timeout exit $qemu_rc)" >&2
exit 125
