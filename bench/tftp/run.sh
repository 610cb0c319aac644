#!/usr/bin/env bash
# bench/tftp/run.sh — stagehand's TFTP server against dnsmasq's TFTP and
# tftp-hpa's in.tftpd, serving ipxe.efi and undionly.kpxe to 1, 50 and 200
# concurrent clients (bench/tftp/loadclient), in two network namespaces joined
# by a veth, server pinned to CPU 1 and client to CPU 0. Writes
# docs/bench/tftp.md.
#
# Environment: TFTP_BENCH_DUR (per run, default 5s), TFTP_BENCH_REPS
# (default 3), TFTP_BENCH_ONLY (regex over "group file clients blksize
# window", to rerun a subset), TFTP_BENCH_SERVERS (default
# "stagehand dnsmasq in.tftpd"), TFTP_BENCH_OUT (default docs/bench/tftp.md),
# TFTP_BENCH_SERVER_BIN (a prebuilt bench/tftp/server, e.g. an older build
# for before/after figures), TFTP_BENCH_RAW (raw per-run results, default
# bench/tftp/results.tsv).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

DUR=${TFTP_BENCH_DUR:-5s}
REPS=${TFTP_BENCH_REPS:-3}
ONLY=${TFTP_BENCH_ONLY:-.}
SERVERS=${TFTP_BENCH_SERVERS:-"stagehand dnsmasq in.tftpd"}
OUT=${TFTP_BENCH_OUT:-docs/bench/tftp.md}
LOCK=/tmp/stagehand-bench.lock

NS_S=shb-tftp-srv
NS_C=shb-tftp-cli
IF_S=shb-tftp-s
IF_C=shb-tftp-c
CLI_IP=10.250.2.2
declare -A ADDR=([stagehand]=10.250.2.1 [dnsmasq]=10.250.2.3 [in.tftpd]=10.250.2.4)
declare -A PID=()

# --- peers and tools --------------------------------------------------------
need=()
for p in dnsmasq-base tftpd-hpa atftp curl iproute2 util-linux; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
	echo "installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${need[@]}" >&2
fi

WORK=$(mktemp -d /tmp/shb-tftp-bench.XXXXXX)
ROOT=$WORK/root
mkdir -p "$ROOT"
chmod 755 "$WORK" "$ROOT"
# /usr/lib/ipxe/ipxe.efi is a symlink to /boot: serve copies of the real files.
cp -L /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/undionly.kpxe "$ROOT/"
chmod 644 "$ROOT"/*

go build -o "$WORK/loadclient" ./bench/tftp/loadclient
go build -o "$WORK/report" ./bench/tftp/report
if [ -n "${TFTP_BENCH_SERVER_BIN:-}" ]; then
	cp "$TFTP_BENCH_SERVER_BIN" "$WORK/server"
else
	go build -o "$WORK/server" ./bench/tftp/server
fi

cleanup() {
	set +e
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PID[@]}"; do wait "$p" 2>/dev/null; done
	for ns in $NS_S $NS_C; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	for d in "${CGDIR[@]}"; do [ -n "$d" ] && rmdir "$d" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# --- network ----------------------------------------------------------------
for ns in $NS_S $NS_C; do ip netns del "$ns" 2>/dev/null || true; done
ip netns add $NS_S
ip netns add $NS_C
ip link add $IF_S netns $NS_S type veth peer name $IF_C netns $NS_C
for ip in "${ADDR[@]}"; do ip -n $NS_S addr add "$ip/24" dev $IF_S; done
ip -n $NS_C addr add $CLI_IP/24 dev $IF_C
for ns in $NS_S $NS_C; do ip -n "$ns" link set lo up; done
ip -n $NS_S link set $IF_S up
ip -n $NS_C link set $IF_C up

# --- servers (pinned to CPU 1, one address each) ------------------------------
# All three stay up for the whole run; an idle server uses no CPU.
# Each server runs in a cgroup (v1 cpuacct) of its own when the kernel has
# one, so the CPU of in.tftpd's children counts too: in.tftpd -L ignores
# SIGCHLD, so the kernel reaps them and their time never reaches the
# parent's cutime. Without cpuacct, /proc/PID/stat is read instead.
CG=/sys/fs/cgroup/cpuacct
declare -A CGDIR=()
start() {
	local name=$1 dir=""
	shift
	if [ -w "$CG/cgroup.procs" ] && mkdir -p "$CG/shb-tftp-$name" 2>/dev/null; then
		dir=$CG/shb-tftp-$name
	fi
	CGDIR[$name]=$dir
	# Join the cgroup before "ip netns exec", which remounts /sys.
	bash -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$dir" \
		ip netns exec $NS_S taskset -c 1 "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}
for s in $SERVERS; do
	case $s in
	stagehand) start stagehand "$WORK/server" -addr "${ADDR[stagehand]}:69" -dir "$ROOT" -max 1000 ;;
	# Logging off for both Go and dnsmasq (--quiet-tftp): the comparison is
	# of the transfer engines. --tftp-max as the brief asks; dnsmasq caps
	# blksize at the interface MTU minus 32 = 1468 on this veth.
	dnsmasq) start dnsmasq dnsmasq -k --conf-file=/dev/null --pid-file= --port=0 \
		--enable-tftp --tftp-root="$ROOT" --tftp-max=1000 --quiet-tftp \
		--listen-address="${ADDR[dnsmasq]}" --bind-interfaces --group=nogroup \
		--log-facility="$WORK/dnsmasq-syslog.log" ;;
	# -L: foreground, forks one child per request.
	in.tftpd) start in.tftpd in.tftpd -L -s "$ROOT" -a "${ADDR[in.tftpd]}:69" ;;
	*) echo "unknown server $s" >&2; exit 2 ;;
	esac
done
sleep 1
CMDS=$WORK/commands.txt
for s in $SERVERS; do
	echo "ip netns exec $NS_S taskset -c 1 $(tr '\0' ' ' <"/proc/${PID[$s]}/cmdline" | sed "s|$WORK|\$WORK|g")" >>"$CMDS"
	echo "  (CPU from ${CGDIR[$s]:-/proc/PID/stat}${CGDIR[$s]:+/cpuacct.usage})" >>"$CMDS"
done
echo "ip netns exec $NS_C taskset -c 0 loadclient -server ADDR:69 -bind $CLI_IP -file FILE -ref \$WORK/root/FILE -c CLIENTS -d $DUR -blksize BLKSIZE -windowsize WINDOW -timeout 1s -retries 5" >>"$CMDS"
echo "ip netns exec $NS_C taskset -c 0 curl -sS --tftp-blksize 1468 -o OUT -w '%{time_total}' tftp://ADDR/FILE" >>"$CMDS"
echo "ip netns exec $NS_C taskset -c 0 atftp --option 'blksize 1468' -g -r FILE -l OUT ADDR" >>"$CMDS"
for s in $SERVERS; do
	kill -0 "${PID[$s]}" 2>/dev/null || { echo "$s did not start:" >&2; cat "$WORK/$s.log" >&2; exit 1; }
done

TCK=$(getconf CLK_TCK)
# cpu_us SERVER: CPU microseconds used so far by the server (and its
# children): the cgroup's cpuacct.usage, else utime+stime+cutime+cstime.
cpu_us() {
	if [ -n "${CGDIR[$1]}" ]; then
		echo $(($(cat "${CGDIR[$1]}/cpuacct.usage") / 1000))
	else
		awk -v hz="$TCK" '{printf "%.0f\n", ($14+$15+$16+$17)*1e6/hz}' "/proc/${PID[$1]}/stat"
	fi
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# measure GROUP FILE CLIENTS BLKSIZE WINDOW SERVER REP
measure() {
	local group=$1 file=$2 c=$3 blk=$4 win=$5 srv=$6 rep=$7 t0 t1 line
	t0=$(cpu_us "$srv")
	line=$(ip netns exec $NS_C taskset -c 0 "$WORK/loadclient" -server "${ADDR[$srv]}:69" -bind $CLI_IP \
		-file "$file" -ref "$ROOT/$file" -c "$c" -d "$DUR" -blksize "$blk" -windowsize "$win" -timeout 1s -retries 5)
	# Let in.tftpd reap the children of aborted transfers before reading.
	sleep 0.5
	t1=$(cpu_us "$srv")
	echo "$group $file c=$c blk=$blk win=$win $srv #$rep: $line cpu_ms=$(((t1 - t0) / 1000))" >&2
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$file" "$c" "$blk" "$win" "$srv" "$rep" \
		"$(((t1 - t0) / 1000))" "$line" >>"$RESULTS"
}

# point GROUP FILE CLIENTS BLKSIZE WINDOW SERVERS...: all repetitions of one
# workload under the shared lock, servers interleaved within each repetition.
point() {
	local group=$1 file=$2 c=$3 blk=$4 win=$5
	shift 5
	[[ "$group $file $c $blk $win" =~ $ONLY ]] || return 0
	local srvs=()
	for s in "$@"; do [[ " $SERVERS " == *" $s "* ]] && srvs+=("$s"); done
	((${#srvs[@]})) || return 0
	exec 9>"$LOCK"
	flock 9
	for rep in $(seq 1 "$REPS"); do
		for s in "${srvs[@]}"; do measure "$group" "$file" "$c" "$blk" "$win" "$s" "$rep"; done
	done
	flock -u 9
	exec 9>&-
}

ALL="stagehand dnsmasq in.tftpd"
TWO="stagehand dnsmasq"
for file in ipxe.efi undionly.kpxe; do
	for c in 1 50 200; do point A "$file" "$c" 1468 0 $ALL; done
done
for file in ipxe.efi undionly.kpxe; do
	for c in 50 200; do point B "$file" "$c" 512 0 $TWO; done
done
for file in ipxe.efi undionly.kpxe; do
	for w in 4 16; do
		for c in 50 200; do point C "$file" "$c" 1468 "$w" $TWO; done
	done
done

# --- real clients, small scale ------------------------------------------------
# curl's own %{time_total} (never a clock around a process); atftp and curl
# output compared byte for byte.
REAL=$WORK/real.tsv
: >"$REAL"
if [[ "real" =~ $ONLY || "$ONLY" == "." ]]; then
	exec 9>"$LOCK"
	flock 9
	for s in $SERVERS; do
		for file in ipxe.efi undionly.kpxe; do
			for rep in $(seq 1 5); do
				t=$(ip netns exec $NS_C taskset -c 0 curl -sS --tftp-blksize 1468 -o "$WORK/curl.out" \
					-w '%{time_total}' "tftp://${ADDR[$s]}/$file")
				same=yes
				cmp -s "$WORK/curl.out" "$ROOT/$file" || same=no
				printf 'curl\t%s\t%s\t%s\t%s\n' "$s" "$file" "$t" "$same" >>"$REAL"
			done
			rm -f "$WORK/atftp.out"
			same=yes
			ip netns exec $NS_C taskset -c 0 atftp --option "blksize 1468" -g -r "$file" -l "$WORK/atftp.out" "${ADDR[$s]}" >/dev/null 2>&1 || same=no
			cmp -s "$WORK/atftp.out" "$ROOT/$file" || same=no
			printf 'atftp\t%s\t%s\t-\t%s\n' "$s" "$file" "$same" >>"$REAL"
		done
	done
	flock -u 9
	exec 9>&-
fi

# --- fragment -------------------------------------------------------------------
versions="stagehand $(git rev-parse --short HEAD 2>/dev/null || echo unknown) ($(go version | cut -d' ' -f3)), $(dnsmasq --version | head -n 1 | cut -d' ' -f1-3), $(in.tftpd -V 2>&1 | head -n 1 | cut -d, -f1), atftp $(dpkg-query -W -f='${Version}' atftp), curl $(curl --version | head -n 1 | cut -d' ' -f2)"
machine="$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
mkdir -p "$(dirname "$OUT")"
"$WORK/report" -results "$RESULTS" -real "$REAL" -dur "$DUR" -reps "$REPS" -machine "$machine" -versions "$versions" \
	-commands "$CMDS" -notes bench/tftp/NOTES.md >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cp "$RESULTS" "${TFTP_BENCH_RAW:-bench/tftp/results.tsv}"
echo "wrote $OUT" >&2
