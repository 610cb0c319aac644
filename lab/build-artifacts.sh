#!/bin/bash
# build-artifacts.sh OUTDIR
#
# Builds the lab's boot artifacts into OUTDIR:
#   vmlinuz              Debian's current amd64 kernel (the package that
#                        linux-image-amd64 depends on, unpacked, not installed)
#   installer.cpio.gz    busybox-static initramfs with the NIC modules and the
#                        installer stand-in as /init (standin-init.sh)
#
# Idempotent: OUTDIR/inputs records the kernel package version and the hashes
# of busybox and of the scripts; when they match, nothing is rebuilt.
# Root is only needed if the apt lists must be fetched first.
set -euo pipefail

out=${1:?usage: build-artifacts.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
init_src=$here/standin-init.sh
dhcp_src=$here/standin-udhcpc.sh
busybox=/bin/busybox

# Dependency order: insmod has no modules.dep to follow.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net e1000"

need() {
	command -v "$1" >/dev/null || { echo "build-artifacts: missing $1 (apt-get install $2)" >&2; exit 1; }
}
need apt-get apt
need dpkg dpkg
need cpio cpio
need gzip gzip
[ -x "$busybox" ] && "$busybox" --list | grep -x udhcpc >/dev/null ||
	{ echo "build-artifacts: $busybox is not busybox-static (apt-get install busybox-static)" >&2; exit 1; }

# One apt-cache call (about 1 s of CPU): the metapackage pins the exact
# kernel package and version it depends on.
resolve_kernel() {
	apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n 1
}
resolved=$(resolve_kernel || true)
if [ -z "$resolved" ]; then
	apt-get update -qq
	resolved=$(resolve_kernel)
fi
[ -n "$resolved" ] || { echo "build-artifacts: cannot resolve linux-image-amd64's kernel package" >&2; exit 1; }
kpkg=${resolved% *}
kver=${resolved#* }

inputs=$(
	echo "kernel $kpkg $kver"
	echo "modules $modules"
	sha256sum "$busybox" "$init_src" "$dhcp_src" "$0" | awk '{print $1}'
)

mkdir -p "$out"
if [ -f "$out/inputs" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/installer.cpio.gz" ] &&
	[ "$(cat "$out/inputs")" = "$inputs" ]; then
	echo "build-artifacts: $out is up to date ($kpkg $kver)"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The .deb is kept in OUTDIR so that a change to the stand-in scripts does
# not download the kernel again; older ones are removed.
deb=$out/${kpkg}_${kver//:/%3a}_amd64.deb
if [ ! -s "$deb" ]; then
	echo "build-artifacts: downloading $kpkg $kver"
	# apt-get download writes to the current directory; the sandbox user
	# _apt could not write to a private temp dir.
	(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kver" >/dev/null)
	find "$out" -maxdepth 1 -name 'linux-image-*.deb' -delete
	mv "$work"/"$kpkg"_*.deb "$deb"
fi
dpkg -x "$deb" "$work/k"

vmlinuz=$(ls "$work"/k/boot/vmlinuz-* | head -n 1)
moddir=$(ls -d "$work"/k/lib/modules/* | head -n 1)

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
install -m 0755 "$init_src" "$root/init"
install -m 0755 "$dhcp_src" "$root/etc/udhcpc.script"

for m in $modules; do
	f=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
	if [ -z "$f" ]; then
		# Built into this kernel: nothing to load.
		grep -q "/$m.ko\$" "$moddir/modules.builtin" && continue
		echo "build-artifacts: module $m not found in $kpkg" >&2
		exit 1
	fi
	# busybox insmod cannot read compressed modules.
	case "$f" in
	*.xz) need xz xz-utils; xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) need zstd zstd; zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	*.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*) cp "$f" "$root/lib/modules/$m.ko" ;;
	esac
done

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9n) >"$work/installer.cpio.gz"

# Replace atomically so a concurrent reader never sees half a file.
cp "$vmlinuz" "$out/.vmlinuz.tmp" && mv -f "$out/.vmlinuz.tmp" "$out/vmlinuz"
cp "$work/installer.cpio.gz" "$out/.initrd.tmp" && mv -f "$out/.initrd.tmp" "$out/installer.cpio.gz"
echo "$inputs" >"$out/inputs"
echo "build-artifacts: built $out/vmlinuz ($kpkg $kver) and $out/installer.cpio.gz"
