#!/bin/sh
# Installer stand-in: PID 1 of the lab initramfs. It does what the Palette
# installer does on the network (DHCP, fetch config_url, run the
# after-install callback, power off) and prints "STANDIN:" lines on the
# serial console for tests to assert on.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node (the build runs without root, so
# no mknod); reopen stdio on the console once devtmpfs provides it.
exec </dev/console >/dev/console 2>&1
mkdir -p /tmp /run /var/run
# Keep kernel info messages from splitting STANDIN lines on the console.
echo 4 >/proc/sys/kernel/printk

say() { echo "STANDIN: $*"; }

# Always end QEMU: with -no-reboot and panic=-1 a poweroff (or a PID 1
# exit) terminates the VM instead of leaving the test to its timeout.
finish() {
	sync
	poweroff -f
	sleep 5
	exit 1
}

fail() {
	say "FAIL $*"
	finish
}

say "start"

# Dependency order matters: the initramfs has no modules.dep for modprobe.
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net e1000; do
	if [ -f "/lib/modules/$m.ko" ]; then
		insmod "/lib/modules/$m.ko" || say "insmod $m failed"
	fi
done

# The NIC appears asynchronously after the driver binds.
i=0
while [ ! -e /sys/class/net/eth0 ]; do
	i=$((i + 1))
	[ "$i" -gt 50 ] && fail "no eth0"
	sleep 0.2
done

ip link set lo up
ip link set eth0 up || fail "eth0 up"
say "eth0 $(cat /sys/class/net/eth0/address)"

udhcpc -i eth0 -n -q -t 10 -s /etc/udhcpc.script || fail "dhcp"
say "dhcp ok $(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([^ ]*\).*/\1/p')"

config_url=""
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	config_url=*) config_url="${arg#config_url=}" ;;
	esac
done
[ -n "$config_url" ] || fail "no config_url on the kernel command line"
# The last path segment is the install token: never print it.
say "config_url=$(echo "$config_url" | sed 's#/[^/]*$#/****#')"

wget -q -O /tmp/ud "$config_url" || fail "fetch user-data"
first=$(head -n 1 /tmp/ud | tr -d '\r')
[ "$first" = "#cloud-config" ] || fail "user-data does not start with #cloud-config"
say "userdata ok"

# name: directly under stylus.site, found by indentation rather than a YAML
# parser (busybox has none): the key at the site block's first child indent.
site_name=$(awk '
	function indent(s) { match(s, /^ */); return RLENGTH }
	/^[ ]*(#|$)/ { next }
	/^stylus:/ { in_stylus = 1; next }
	in_stylus && indent($0) == 0 { in_stylus = 0; in_site = 0 }
	in_stylus && !in_site && /^[ ]+site:[ ]*$/ { in_site = 1; site_ind = indent($0); child = -1; next }
	in_site && indent($0) <= site_ind { in_site = 0; next }
	in_site && child < 0 { child = indent($0) }
	in_site && indent($0) == child && /^[ ]+name:/ {
		sub(/^[ ]+name:[ ]*/, ""); sub(/[ ]+#.*$/, ""); gsub(/["\047]/, ""); print; exit
	}
' /tmp/ud)
say "site.name=$site_name"

done_url=$(grep -o 'http://[^ "]*/callback/[^ "/]*/done' /tmp/ud | head -n 1)
[ -n "$done_url" ] || fail "no callback URL in user-data"

if grep -q 'standin.fail=1' /proc/cmdline; then
	say "expect-fail"
	failed_url="${done_url%/done}/failed"
	if wget -q -O- --header 'Content-Type: text/plain' \
		--post-data='standin: failure requested by standin.fail=1' "$failed_url" >/dev/null; then
		say "failed-callback ok"
	else
		say "failed-callback failed"
	fi
	finish
fi

if wget -q -O- --post-data= "$done_url" >/dev/null; then
	say "callback ok"
else
	say "callback failed"
fi
finish
