#!/usr/bin/env bash
# stagehand demo: one VM PXE-boots through stagehand into the installer
# stand-in, reports completion, and is recorded as installed.
#
# Everything happens inside a network namespace this script creates
# (10.98.0.0/24 on a bridge); nothing leaves this machine. Run as root
# from the repository (make demo does: it installs the packages first).
set -euo pipefail
cd "$(dirname "$0")/.."

ns=stagehand-demo-$$
mac=52:54:00:de:00:01
work=$(mktemp -d /tmp/stagehand-demo.XXXXXX)
cache=${STAGEHAND_LAB_CACHE:-/var/cache/stagehand-lab}
bin=$PWD/bin/stagehand
server=http://10.98.0.1:8080
pids=()

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
# elapsed: seconds since the VM was powered on, to a tenth.
elapsed() { awk -v n="$(date +%s%N)" -v p="$power_on" 'BEGIN { printf "%.1f", (n - p) / 1e9 }'; }
cli() { ip netns exec "$ns" "$bin" "$@" --server "$server" --data-dir "$work/data"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, taps)"; exit 1; }
[ -x "$bin" ] || go build -o "$bin" ./cmd/stagehand

say "building the lab kernel and the installer stand-in initramfs into $cache"
bash lab/build-artifacts.sh "$cache" >/dev/null
say "creating network namespace $ns: bridge br0 10.98.0.1/24, tap0 for the VM"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" addr add 10.98.0.1/24 dev br0
ip -n "$ns" link set br0 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" link set tap0 up

say "starting stagehand (full DHCP, pool 10.98.0.100-10.98.0.150); log: $work/stagehand.log"
ip netns exec "$ns" "$bin" serve --interface br0 --data-dir "$work/data" --dhcp-mode full \
	--dhcp-range 10.98.0.100-10.98.0.150 --http-port 8080 >"$work/stagehand.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do cli status >/dev/null 2>&1 && break; sleep 0.2; done

cat >"$work/base.yaml" <<YAML
stylus:
  site:
    paletteEndpoint: api.spectrocloud.example
    projectUid: demo-project
    edgeHostToken: demo-token-never-logged
install:
  poweroff: true
YAML
say "stagehand profile add lab …"
cli profile add lab --kernel "$cache/vmlinuz" --initrd "$cache/installer.cpio.gz" \
	--cmdline "console=ttyS0 panic=-1" --userdata "$work/base.yaml"
say "stagehand host add $mac --profile lab --name demo-node-1"
cli host add "$mac" --profile lab --name demo-node-1 --serial DEMO-0001

say "powering on the VM (SeaBIOS + iPXE ROM, software emulation: well under a minute); serial: $work/serial.log"
power_on=$(date +%s%N)
ip netns exec "$ns" timeout 600 qemu-system-x86_64 -nodefaults -machine pc -accel tcg -m 512M \
	-display none -monitor none -serial "file:$work/serial.log" -no-reboot -device sga \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
	-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1" &
qemu=$!
pids+=($qemu)

last=""
deadline=$((SECONDS + 600))
while :; do
	state=$(cli host show "$mac" --output json | sed -n 's/^  "state": "\(.*\)",$/\1/p')
	if [ "$state" != "$last" ]; then
		say "host $mac is now: $state ($(elapsed) s after power-on)"
		last=$state
	fi
	[ "$state" = installed ] || [ "$state" = failed ] && break
	if ! kill -0 "$qemu" 2>/dev/null && [ "$state" != installing ]; then
		echo "demo: the VM stopped before the host was installed; serial console:"; tail -n 30 "$work/serial.log"; exit 1
	fi
	[ $SECONDS -lt $deadline ] || { echo "demo: timed out"; tail -n 30 "$work/serial.log"; exit 1; }
	sleep 0.5
done
wait "$qemu" 2>/dev/null || true
say "the VM powered itself off. What stagehand recorded:"
cli host list
echo
cli host events "$mac"
echo
say "the attempt as stagehand timed it (stagehand host show $mac):"
cli host show "$mac"
[ "$state" = installed ] || exit 1
say "done: $mac is installed and will boot its local disk from now on (stagehand host reprovision to redo it)"
