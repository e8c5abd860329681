#!/usr/bin/env bash
# Prepares the boot files for fidoemu's kernel-level tests: a stock Debian kernel (which has
# uhid and hidraw as modules) and a tiny busybox initramfs, in $VMDIR (default /tmp/fidoemu-vm).
#
# Idempotent: does nothing when $VMDIR already holds boot files for the kernel that
# linux-image-amd64 currently resolves to, built from this guest-init. Needs root and apt
# (Debian); downloads nothing but apt packages (the kernel .deb is fetched with
# `apt-get download` and unpacked, never installed).
set -euo pipefail
VMDIR=${VMDIR:-/tmp/fidoemu-vm}
HERE=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need=()
for pkg in qemu-system-x86 busybox-static kmod fido2-tools openssh-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-vm: installing ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# linux-image-amd64 is a metapackage; the versioned image package changes with security updates.
resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
PKG=$(resolve)
if [ -z "$PKG" ]; then
  $SUDO apt-get update -qq
  PKG=$(resolve)
fi
[ -n "$PKG" ] || { echo "setup-vm: cannot resolve linux-image-amd64 with apt-cache" >&2; exit 1; }

STAMP="$PKG $(sha256sum "$HERE/guest-init" | cut -d' ' -f1)"
if [ -f "$VMDIR/stamp" ] && [ "$(cat "$VMDIR/stamp")" = "$STAMP" ] \
   && [ -s "$VMDIR/vmlinux" ] && [ -s "$VMDIR/initramfs.cpio.gz" ]; then
  echo "setup-vm: $VMDIR is up to date ($PKG)"
  exit 0
fi

mkdir -p "$VMDIR"
WORK=$(mktemp -d "$VMDIR/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
(cd "$WORK" && apt-get download -qq "$PKG" 2>&1 | grep -v "unsandboxed as root" || true)
DEB=$(ls "$WORK"/"$PKG"_*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { echo "setup-vm: apt-get download $PKG failed" >&2; exit 1; }
mkdir kroot && dpkg-deb -x "$DEB" kroot
KVER=$(ls kroot/lib/modules | head -1)
depmod -b kroot "$KVER"

# qemu boots an uncompressed vmlinux directly through its PVH note, which saves the seconds
# TCG would spend decompressing a bzImage. Debian amd64 kernels are XZ-compressed.
python3 - "kroot/boot/vmlinuz-$KVER" vmlinux <<'PY'
import lzma
import sys

image = open(sys.argv[1], "rb").read()
start = image.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("setup-vm: no XZ payload in the kernel image")
decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
with open(sys.argv[2], "wb") as out:
    out.write(decompressor.decompress(image[start:]))
PY

# The initramfs: static busybox, the modules the guest needs (dependencies first) and /init.
mkdir -p initrd/bin initrd/mod initrd/proc initrd/sys initrd/dev initrd/lower initrd/upper initrd/newroot
cp /bin/busybox initrd/bin/busybox
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "initrd/bin/$applet"   # never a self-link
done
for module in virtio_pci 9pnet_virtio 9p overlay uhid hid_generic; do
  modprobe -d kroot -S "$KVER" --show-depends "$module" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" initrd/mod/
  basename "$ko" >> initrd/mod/order
done
grep -q '^uhid.ko' initrd/mod/order || { echo "setup-vm: uhid module not found in $KVER" >&2; exit 1; }
install -m 755 "$HERE/guest-init" initrd/init
(cd initrd && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 > initramfs.cpio.gz

mv -f vmlinux initramfs.cpio.gz "$VMDIR/"
echo "$KVER" > "$VMDIR/kver"
echo "$STAMP" > "$VMDIR/stamp"
echo "setup-vm: kernel $KVER ready in $VMDIR"
