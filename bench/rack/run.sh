#!/usr/bin/env bash
# bench/rack/run.sh — a simulated rack power-on against one stagehand.
#
# N hosts (100, 1000, 5000) go through the whole boot chain at once against
# one `stagehand serve --dhcp-mode proxy` in its own network namespace:
# proxyDHCP DISCOVER, the REQUEST for the site's address (overheard), the PXE
# REQUEST to 4011, TFTP of undionly.kpxe, iPXE's DHCP, stage 1, stage 2,
# kernel, initrd, user-data, callback. The load
# client (bench/rack/rackgen) runs in a second namespace joined by a veth,
# every host on an address of its own. Server pinned to CPU 1, client to
# CPU 0. Each figure is taken RACK_RUNS times (default 3) under the shared
# bench lock, on a fresh inventory each time. Writes docs/bench/rack.md.
#
# Knobs (environment): RACK_SIZES="100 1000 5000" RACK_RUNS=3
# RACK_KERNEL_MIB=8 RACK_INITRD_MIB=32 RACK_CONC=200 RACK_RAMP=3s
# RACK_SMALL_SIZES="5000" (control-plane runs with 64 KiB artifacts; "" for
# none) RACK_PROFILE_N=5000 (0: no profiling run) RACK_PROFILE_ARTIFACTS=small
# (or big) RACK_OUT=docs/bench/rack.md. RACK_KEEP=1 keeps the work directory
# (results, server logs, profile). RACK_BASE_BIN=PATH: a stagehand binary
# of another build (e.g. the previous main) served in alternate runs of the
# big sizes, in the same run and on the same inventories (set up by this
# build's CLI); the medians of both go at the end of the fragment, the base
# named by RACK_BASE_LABEL.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

SIZES=${RACK_SIZES-"100 1000 5000"}
RUNS=${RACK_RUNS:-3}
KERNEL_MIB=${RACK_KERNEL_MIB:-8}
INITRD_MIB=${RACK_INITRD_MIB:-32}
CONC=${RACK_CONC:-200}
RAMP=${RACK_RAMP:-3s}
PROFILE_N=${RACK_PROFILE_N:-5000}
PROFILE_ARTIFACTS=${RACK_PROFILE_ARTIFACTS:-small} # small: the control plane; big: mostly sendfile
SMALL_SIZES=${RACK_SMALL_SIZES-"5000"} # ("" for none) control plane only: 64 KiB artifacts
SMALL_KIB=64
LOCK=/tmp/stagehand-bench.lock
OUT=${RACK_OUT:-docs/bench/rack.md}

SRV_NS=shb-rack-srv
CLI_NS=shb-rack-cli
SRV_IF=shb-rack-srv
CLI_IF=shb-rack-cli
SRV_IP=10.250.4.1
CLI_IP=10.250.4.2
HOSTS_NET=10.250.32.0/19 # the hosts' addresses; see rackgen/rack.go
HTTP_PORT=8080
URL=http://$SRV_IP:$HTTP_PORT

WORK=$(mktemp -d /tmp/shb-rack.XXXXXX)
SRV_PID=

log() { echo "rack: $*" >&2; }

stop_server() {
	if [ -n "$SRV_PID" ]; then
		kill -TERM "$SRV_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
		SRV_PID=
	fi
}

cleanup() {
	stop_server
	for ns in $SRV_NS $CLI_NS; do
		if ip netns list | grep -qw "$ns"; then
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
			ip netns del "$ns" 2>/dev/null || true
		fi
	done
	[ -n "${RACK_KEEP:-}" ] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- dependencies: nothing but iproute2, util-linux (flock, taskset),
# curl and Debian's iPXE binaries. No peer: the targets are absolute.
missing=
for p in iproute2 util-linux curl ipxe; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $missing
fi

# ---- build
log "building stagehand and rackgen"
go build -o "$WORK/stagehand" ./cmd/stagehand
go build -o "$WORK/rackgen" ./bench/rack/rackgen
SH=$WORK/stagehand
RG=$WORK/rackgen

# ---- artifacts: incompressible, sizes given so that N=1000 can finish in
# under a minute on this machine (see the fragment for why).
mkdir -p "$WORK/art" "$WORK/results"
head -c $((KERNEL_MIB << 20)) /dev/urandom >"$WORK/art/kernel"
head -c $((INITRD_MIB << 20)) /dev/urandom >"$WORK/art/initrd"
head -c $((SMALL_KIB << 10)) /dev/urandom >"$WORK/art/kernel-small"
head -c $((SMALL_KIB << 10)) /dev/urandom >"$WORK/art/initrd-small"

# ---- network: two namespaces, one veth. The server reaches the hosts'
# /19 through the client namespace's one address, so its neighbour table
# holds one entry however many hosts there are.
max_n=0
for n in $SIZES $SMALL_SIZES $PROFILE_N; do [ "$n" -gt "$max_n" ] && max_n=$n; done
ip netns add $SRV_NS
ip netns add $CLI_NS
ip link add $SRV_IF type veth peer name $CLI_IF
ip link set $SRV_IF netns $SRV_NS
ip link set $CLI_IF netns $CLI_NS
ip -n $SRV_NS addr add $SRV_IP/24 dev $SRV_IF
ip -n $CLI_NS addr add $CLI_IP/24 dev $CLI_IF
for ns in $SRV_NS $CLI_NS; do ip -n $ns link set lo up; done
ip -n $SRV_NS link set $SRV_IF up
ip -n $CLI_NS link set $CLI_IF up
ip -n $SRV_NS route add $HOSTS_NET via $CLI_IP dev $SRV_IF
log "giving the client namespace $max_n host addresses"
"$RG" addrs -n "$max_n" -dev $CLI_IF | ip -n $CLI_NS -batch -

# start_server DATADIR [BINARY]: stagehand pinned to CPU 1, PID in SRV_PID.
start_server() {
	local d=$1 bin=${2:-$SH}
	ip netns exec $SRV_NS taskset -c 1 "$bin" serve \
		--listen-address $SRV_IP --interface $SRV_IF --dhcp-mode proxy \
		--http-port $HTTP_PORT --tftp-port 69 --data-dir "$d" --unknown-hosts ignore \
		--log-format json --log-level info >>"$d/server.log" 2>&1 &
	SRV_PID=$!
	for _ in $(seq 100); do
		if ip netns exec $SRV_NS curl -fs -o /dev/null "$URL/healthz"; then
			return 0
		fi
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "server did not come up:"; tail -n 20 "$d/server.log" >&2
	return 1
}

cli() { ip netns exec $SRV_NS "$SH" "$@" --server "$URL"; }

# use_artifacts big|small: what the next prepare puts in the profile.
use_artifacts() {
	if [ "$1" = small ]; then KFILE=$WORK/art/kernel-small IFILE=$WORK/art/initrd-small; else KFILE=$WORK/art/kernel IFILE=$WORK/art/initrd; fi
	KERNEL_BYTES=$(stat -c %s "$KFILE")
	INITRD_BYTES=$(stat -c %s "$IFILE")
}

# prepare DATADIR N: a fresh inventory holding the rack, then a fresh
# server process on it, so that its RSS is the idle RSS with N hosts.
prepare() {
	local d=$1 n=$2 bin=${3:-$SH}
	rm -rf "$d"; mkdir -p "$d"
	start_server "$d"
	cli profile add rack --kernel "$KFILE" --initrd "$IFILE" \
		--cmdline 'console=ttyS0 rd.neednet=1' --userdata "$ROOT/examples/base-userdata.yaml" --data-dir "$d" >/dev/null
	"$RG" csv -n "$n" -profile rack >"$d/rack.csv"
	cli host import "$d/rack.csv" --data-dir "$d" >&2
	stop_server
	start_server "$d" "$bin"
	sleep 1
}

# one_run LABEL N R [BINARY]: one measured rack boot, under the bench lock.
# The base label's results go to results-base, out of the report's tables.
one_run() {
	local label=$1 n=$2 r=$3 bin=${4:-$SH} d=$WORK/data res=$WORK/results
	case $label in base*) res=$WORK/results-base && mkdir -p "$res" ;; esac
	exec 9>"$LOCK"
	log "$label N=$n run $r: waiting for the bench lock"
	flock 9
	prepare "$d" "$n" "$bin"
	log "$label N=$n run $r: booting the rack (server PID $SRV_PID)"
	ip netns exec $CLI_NS taskset -c 0 "$RG" load -n "$n" -c "$CONC" -ramp "$RAMP" -dev $CLI_IF \
		-server $SRV_IP -http-port $HTTP_PORT -server-pid "$SRV_PID" \
		-kernel-size "$KERNEL_BYTES" -initrd-size "$INITRD_BYTES" \
		-o "$res/load-$label-$n-$r.json"
	cli host export --format json -f "$d/export.json" --data-dir "$d"
	ip netns exec $SRV_NS "$RG" verify -n "$n" -export "$d/export.json" -server "$URL" \
		-token-file "$d/api-token" -o "$res/verify-$label-$n-$r.json" || true
	stop_server
	flock -u 9
	exec 9>&-
	grep -h '"totalSeconds"\|"failed"' "$res/load-$label-$n-$r.json" | tr -d ' \n' >&2; echo >&2
	grep -h '"numProblems"' "$res/verify-$label-$n-$r.json" >&2 || true
}

# median_seconds DIR LABEL N: the median totalSeconds of those runs.
median_seconds() {
	grep -h '"totalSeconds"' "$1"/load-"$2"-"$3"-*.json | tr -dc '0-9.\n' | sort -n |
		awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'
}

use_artifacts big
for n in $SIZES; do
	for r in $(seq "$RUNS"); do
		if [ -n "${RACK_BASE_BIN:-}" ]; then one_run base "$n" "$r" "$RACK_BASE_BIN"; fi
		one_run big "$n" "$r"
	done
done
use_artifacts small
for n in $SMALL_SIZES; do
	for r in $(seq "$RUNS"); do
		if [ -n "${RACK_BASE_BIN:-}" ]; then one_run base-small "$n" "$r" "$RACK_BASE_BIN"; fi
		one_run small "$n" "$r"
	done
done
use_artifacts big

# ---- one extra, unmeasured run with a CPU profile of the server. The
# profiling hook is added with -overlay, so the server's source is as is.
TAIL=$WORK/tail.md
: >"$TAIL"
if [ "$PROFILE_N" -gt 0 ]; then
	printf '{"Replace":{"%s":"%s"}}\n' "$ROOT/cmd/stagehand/zz_rackprofile.go" "$ROOT/bench/rack/overlay/benchprofile.go" >"$WORK/overlay.json"
	go build -tags rackprofile -overlay "$WORK/overlay.json" -o "$WORK/stagehand-prof" ./cmd/stagehand
	exec 9>"$LOCK"
	log "profiling run N=$PROFILE_N: waiting for the bench lock"
	flock 9
	d=$WORK/data
	use_artifacts "$PROFILE_ARTIFACTS"
	export RACKBENCH_CPUPROFILE=$WORK/cpu.pprof
	prepare "$d" "$PROFILE_N" "$WORK/stagehand-prof"
	unset RACKBENCH_CPUPROFILE
	ip netns exec $CLI_NS taskset -c 0 "$RG" load -n "$PROFILE_N" -c "$CONC" -ramp "$RAMP" -dev $CLI_IF \
		-server $SRV_IP -http-port $HTTP_PORT -server-pid "$SRV_PID" \
		-kernel-size "$KERNEL_BYTES" -initrd-size "$INITRD_BYTES" -o "$WORK/profile-load.json"
	kill -USR1 "$SRV_PID"
	sleep 1
	stop_server
	flock -u 9
	exec 9>&-
	PROFILE_SECONDS=$(grep -h '"totalSeconds"' "$WORK/profile-load.json" | tr -dc '0-9.')
	{
		echo "Server CPU profile of one extra N=$PROFILE_N run with the $PROFILE_ARTIFACTS artifacts ($KERNEL_BYTES + $INITRD_BYTES bytes; not in the tables; the profiling hook is"
		echo "added at build time by \`go build -tags rackprofile -overlay\` with bench/rack/overlay/benchprofile.go,"
		echo "the server's source is unchanged; the rack took $PROFILE_SECONDS s). \`go tool pprof -top\`, flat and cumulative, top 30:"
		echo
		echo '```'
		go tool pprof -top -nodecount=30 "$WORK/stagehand-prof" "$WORK/cpu.pprof" 2>/dev/null | sed -n '1,40p'
		echo '```'
		echo
		echo 'Cumulative, the server paths that matter (`-top -cum`, filtered to stagehand, bbolt commits, fdatasync, sendfile):'
		echo
		echo '```'
		go tool pprof -top -cum -nodecount=400 "$WORK/stagehand-prof" "$WORK/cpu.pprof" 2>/dev/null |
			grep -E 'stagehand-dev/stagehand/|bbolt\.\(\*(DB|Tx)\)\.(Update|Batch|Commit)|fdatasync|Sendfile' | sed -n '1,30p' || true
		echo '```'
		echo
	} >>"$TAIL"
fi
use_artifacts big
if [ -n "${RACK_BASE_BIN:-}" ]; then
	{
		echo "### Against another build, in the same run"
		echo
		echo "Runs alternated between this build and the base build \`RACK_BASE_BIN\` (${RACK_BASE_LABEL:-$RACK_BASE_BIN}),"
		echo "each serving the same freshly imported rack; the hosts' time to installed, median of $RUNS (all values):"
		echo
		echo "| hosts | this build | base | ratio (this / base) |"
		echo "| --- | --- | --- | --- |"
		for row in $(for n in $SIZES; do echo "big:$n"; done) $(for n in $SMALL_SIZES; do echo "small:$n"; done); do
			l=${row%%:*} n=${row#*:} bl=base
			[ "$l" = small ] && bl=base-small
			a=$(median_seconds "$WORK/results" "$l" "$n")
			b=$(median_seconds "$WORK/results-base" "$bl" "$n")
			all_a=$(grep -h '"totalSeconds"' "$WORK/results"/load-"$l"-"$n"-*.json | tr -dc '0-9.\n' | paste -sd' ')
			all_b=$(grep -h '"totalSeconds"' "$WORK/results-base"/load-"$bl"-"$n"-*.json | tr -dc '0-9.\n' | paste -sd' ')
			echo "| $n ($l artifacts) | $a s ($all_a) | $b s ($all_b) | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}') |"
		done
		echo
	} >>"$TAIL"
fi
if [ -f "$ROOT/bench/rack/notes.md" ]; then cat "$ROOT/bench/rack/notes.md" >>"$TAIL"; fi

# ---- the fragment
HEAD=$WORK/head.md
{
	echo "## rack: a simulated rack power-on, end to end"
	echo
	echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r), $(go version | cut -d' ' -f3)."
	echo "stagehand $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (working tree with uncommitted changes)')."
	echo "No peer: dnsmasq + a TFTP daemon + nginx do not keep an inventory or hand out per-host user-data, so this"
	echo "workload has absolute targets (issue 4, item 5) instead of a ratio."
	echo
	echo "Command: \`sudo bash bench/rack/run.sh\` (sizes $SIZES, $RUNS runs each; knobs in its header)."
	echo "Per run: a fresh data dir; \`stagehand profile add rack --kernel … --initrd … --userdata examples/base-userdata.yaml\`;"
	echo "\`stagehand host import rack.csv\` (N rows: mac,name,serial,profile); the server is restarted so that its"
	echo "RSS before the load is the idle RSS with N hosts in the inventory; then, under \`flock $LOCK\`:"
	echo
	echo '```'
	echo "ip netns exec $SRV_NS taskset -c 1 stagehand serve --listen-address $SRV_IP --interface $SRV_IF --dhcp-mode proxy \\"
	echo "    --http-port $HTTP_PORT --tftp-port 69 --data-dir DIR --unknown-hosts ignore --log-format json --log-level info"
	echo "ip netns exec $CLI_NS taskset -c 0 rackgen load -n N -c $CONC -ramp $RAMP -dev $CLI_IF -server $SRV_IP -server-pid PID \\"
	echo "    -kernel-size $KERNEL_BYTES -initrd-size $INITRD_BYTES"
	echo "stagehand host export --format json -f export.json   # then: rackgen verify (state, attempt, events per host)"
	echo '```'
	echo
	echo "Each host, in order: (1) broadcast proxyDHCP DISCOVER as BIOS PXE firmware (options 60, 93, 94, 97) → OFFER"
	echo "with undionly.kpxe, then the broadcast REQUEST for its address to the site DHCP server (options 50 and 54, not"
	echo "answered: that server is not simulated), which stagehand overhears; (2) REQUEST to 4011 from its own address"
	echo "(ciaddr) → ACK; (3) TFTP RRQ (blksize 1432, tsize,"
	echo "one ACK per block) of undionly.kpxe from its own address, bytes compared with /usr/lib/ipxe; (4) DISCOVER as"
	echo "iPXE (user class iPXE, option 175) → OFFER with http://…/boot.ipxe, and iPXE's REQUEST to the site server;"
	echo "(5) GET /boot.ipxe; (6) GET the stage-2"
	echo "URL built from stage 1's chain line; (7) GET the kernel and initrd URLs of the install script (length checked);"
	echo "(8) GET its config_url (must be #cloud-config); (9) POST the callback URL found in the user-data (must answer"
	echo "installed, changed). HTTP and TFTP leave from the host's own address (10.250.32.0/19, one /32 per host), so"
	echo "user-data stays bound to the address that fetched stage 2 (\`--userdata-ip-binding\` on, the default), and stage 2"
	echo "is bound to the MAC by the overheard REQUEST (\`--mac-binding strict\`, the default; the hosts are routed, so"
	echo "the server's neighbour table cannot vouch for them). DHCP"
	echo "is retransmitted after 2, 4, 8 s as firmware would; HTTP and TFTP failures fail the host. \"Failed hosts\""
	echo "counts hosts that did not reach installed for any reason. After each run the inventory is checked: every host"
	echo "installed with attempt 1, and its events include dhcp, booting, userdata and installed."
	echo
	echo "Server CPU is utime+stime of the server PID from /proc/PID/stat across the load; idle RSS is VmRSS just before"
	echo "the load (server restarted on the loaded inventory), peak RSS is VmHWM after it. The site DHCP server that would"
	echo "give each host its address is not simulated: the hosts' addresses are configured in the client namespace."
	echo
} >"$HEAD"
"$RG" report -dir "$WORK/results" -head "$HEAD" -tail "$TAIL" -o "$OUT"
log "wrote $OUT"
