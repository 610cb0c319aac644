#!/usr/bin/env bash
# DHCP benchmarks for issue 4: stagehand vs dnsmasq, proxyDHCP
# (DISCOVER/OFFER with PXE options) and full DHCP with durable leases
# (DORA). Writes docs/bench/dhcp.md. Run as root from anywhere:
#
#	bash bench/dhcp/run.sh            # full run, about 10 minutes
#	RUNS=1 DUR=3 bash bench/dhcp/run.sh   # smoke run
#
# Method (docs/BENCHMARKS.md): server and perfdhcp in two network
# namespaces joined by a veth, server pinned to CPU 1, client to CPU 0.
# perfdhcp acts as a relay (-l CLIENT_ADDR: giaddr set, no raw socket), so
# both servers answer to 10.250.1.2:67; stagehand is told to trust it
# (--dhcp-trusted-relays), as it answers no relay by default. Each
# offered rate is run RUNS times, each time against a freshly started
# server with empty state; the figure is the highest offered rate whose
# median loss stays under 1 %.
# Every measuring step holds /tmp/stagehand-bench.lock, one workload at a
# time, so that figures never overlap another engineer's.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

RUNS=${RUNS:-3}
DUR=${DUR:-5}                                  # seconds per perfdhcp run
# Steps of 2500 (proxy) and 500 / 50 (full) near the knees: with steps
# of 5000 one step decided the ratio (docs/bench/dhcp.md, run to run).
PROXY_RATES=${PROXY_RATES:-"5000 10000 12500 15000 17500 20000 25000 30000"}
FULL_RATES=${FULL_RATES:-"1000 2000 3000 3500 4000 4500 5000 6000 8000"}
DNSMASQ_FULL_RATES=${DNSMASQ_FULL_RATES:-"100 200 300 350 400 450 600 800"}
LOCK=/tmp/stagehand-bench.lock

NS_S=shb-dhcp-srv NS_C=shb-dhcp-cli
IF_S=shb-dhcp-s IF_C=shb-dhcp-c
SIP=10.250.1.1 CIP=10.250.1.2
# The veth carries /16 so that the full-mode pool (16 384 addresses, more
# than the 10 000 client MACs) lies inside the server's subnet; nothing in
# 10.250.0.0/16 leaves the two namespaces.
PREFIX=16
RANGE_START=10.250.64.0 RANGE_END=10.250.127.255

W=$(mktemp -d /var/tmp/shb-dhcp.XXXXXX) # on disk, not tmpfs: fsync must cost what it costs
OUT=${OUT:-$ROOT/docs/bench/dhcp.md}
# STAGEHAND_BIN: measure this binary instead of building the tree (used to
# record the "before" figures of a change).
STAGEHAND_BIN=${STAGEHAND_BIN:-}
SRV_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_server() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -"${1:-TERM}" "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
	fi
	SRV_PID=""
}

cleanup() {
	stop_server KILL
	for ns in $NS_S $NS_C; do
		if ip netns list | grep -qw "$ns"; then
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
			ip netns del "$ns" 2>/dev/null || true
		fi
	done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- peers and build ----
need=()
command -v perfdhcp >/dev/null || need+=(kea-admin)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v taskset >/dev/null || need+=(util-linux)
command -v flock >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${need[@]}" >&2
fi
log "building"
if [ -n "$STAGEHAND_BIN" ]; then
	cp "$STAGEHAND_BIN" "$W/stagehand"
else
	go build -o "$W/stagehand" ./cmd/stagehand
fi
go build -o "$W/leasecheck" ./bench/dhcp/leasecheck

# ---- namespaces ----
cleanup_ns_only() { for ns in $NS_S $NS_C; do ip netns del "$ns" 2>/dev/null || true; done; }
cleanup_ns_only
ip netns add $NS_S
ip netns add $NS_C
ip link add $IF_S type veth peer name $IF_C
ip link set $IF_S netns $NS_S
ip link set $IF_C netns $NS_C
ip -n $NS_S addr add $SIP/$PREFIX dev $IF_S
ip -n $NS_C addr add $CIP/$PREFIX dev $IF_C
for x in "$NS_S $IF_S" "$NS_C $IF_C"; do
	set -- $x
	ip -n "$1" link set lo up
	ip -n "$1" link set "$2" up
done

# 10 000 random locally administered MACs, same list every run (seeded).
awk 'BEGIN { srand(42); for (i = 0; i < 10000; i++) {
	printf "02:%02x:%02x:%02x:%02x:%02x\n", int(rand()*256), int(rand()*256), int(rand()*256), int(rand()*256), int(rand()*256) } }' >"$W/macs.txt"
VCI=$(printf 'PXEClient:Arch:00000:UNDI:002001' | od -An -tx1 | tr -d ' \n')
PXE_OPTS=(-o "60,$VCI" -o 93,0000 -o 94,010201 -o 97,00564d4a2c3b1f2e4d5c6b7a8f9e0d1c2b)
CLK_TCK=$(getconf CLK_TCK)

# ---- servers ----
wait_port67() {
	for _ in $(seq 100); do
		if ip netns exec $NS_S ss -Hlun 'sport = :67' | grep -q .; then return 0; fi
		kill -0 "$SRV_PID" 2>/dev/null || { cat "$W/server.log" >&2; return 1; }
		sleep 0.05
	done
	log "server did not bind port 67"
	cat "$W/server.log" >&2
	return 1
}

# start_server NAME MODE: NAME stagehand|dnsmasq, MODE proxy|full. Fresh
# state every time. Sets SRV_PID (the server itself: ip netns exec and
# taskset exec into it).
start_server() {
	rm -rf "$W/data" "$W/dnsmasq.leases"
	mkdir -p "$W/data"
	case "$1/$2" in
	stagehand/proxy)
		# --unknown-hosts discover: every PXE client is answered (the
		# perfdhcp MACs are not in the inventory).
		ip netns exec $NS_S taskset -c 1 "$W/stagehand" serve --interface $IF_S --dhcp-mode proxy \
			--dhcp-trusted-relays $CIP --unknown-hosts discover --data-dir "$W/data" --http-port 8080 --tftp-port 69 --log-level warn \
			>"$W/server.log" 2>&1 &
		;;
	stagehand/full)
		ip netns exec $NS_S taskset -c 1 "$W/stagehand" serve --interface $IF_S --dhcp-mode full \
			--dhcp-range $RANGE_START-$RANGE_END --dhcp-trusted-relays $CIP --unknown-hosts discover --data-dir "$W/data" \
			--http-port 8080 --tftp-port 69 --log-level warn >"$W/server.log" 2>&1 &
		;;
	dnsmasq/proxy)
		# One PXE service and no prompt: the proxy offer names the
		# boot file directly, as stagehand's does.
		ip netns exec $NS_S taskset -c 1 dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
			--pid-file= --interface=$IF_S --dhcp-range=10.250.0.0,proxy \
			--pxe-service=x86PC,stagehand,undionly.kpxe --dhcp-leasefile="$W/dnsmasq.leases" \
			>"$W/server.log" 2>&1 &
		;;
	dnsmasq/full)
		# --no-ping: by default dnsmasq pings every new address and
		# stalls up to 3 s per ping (single-threaded); stagehand never
		# pings (docs/LAB.md pitfall 4). Without it dnsmasq answers nothing here.
		ip netns exec $NS_S taskset -c 1 dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
			--pid-file= --interface=$IF_S --no-ping --dhcp-range=$RANGE_START,$RANGE_END,1h \
			--dhcp-lease-max=20000 --dhcp-leasefile="$W/dnsmasq.leases" \
			>"$W/server.log" 2>&1 &
		;;
	esac
	SRV_PID=$!
	wait_port67
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# rcvbuf_errors NS: UDP datagrams the kernel dropped in NS for a full
# socket receive buffer (per namespace): tells server-side loss from
# client-side loss.
rcvbuf_errors() {
	ip netns exec "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) n[$i] = i; h = 1 } else print $n["RcvbufErrors"] }' /proc/net/snmp
}

# perfdhcp_run OUTFILE RATE [ARGS...]: one bounded perfdhcp run, pinned.
perfdhcp_run() {
	local out=$1 rate=$2
	shift 2
	# perfdhcp exits 3 whenever one exchange is incomplete: ignore the code.
	timeout $((DUR + 20)) ip netns exec $NS_C taskset -c 0 \
		perfdhcp -4 -r "$rate" -p "$DUR" -l $CIP -M "$W/macs.txt" "$@" $SIP >"$out" 2>&1 || true
}

# stat_of FILE SECTION FIELD: a counter of one perfdhcp statistics section.
stat_of() {
	awk -v sec="Statistics for: $2" -v f="$3: " '
		/^\*\*\*/ { in_ = index($0, sec) > 0; next }
		in_ && index($0, f) == 1 { v = substr($0, length(f) + 1); sub(/ .*/, "", v); print v; exit }' "$1"
}

# lat FILE SECTION Q: the Q-quantile (0..1) of reply delay in ms, from -x t.
lat() {
	awk -v sec="Timestamps for packets: $2" '
		/^\*\*\*/ { in_ = index($0, sec) > 0; next }
		in_ && /^sent \/ received:/ { printf "%.3f\n", ($6 - $4) * 1000 }' "$1" |
		sort -n | awk -v q="$3" '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(q * NR + 0.999999); if (i < 1) i = 1; print a[i] }'
}

# median/min/max of numbers on stdin, as "MED (MIN–MAX)".
summ() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit }
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%s (%s–%s)\n", fmt(m), fmt(a[1]), fmt(a[NR]) }
		function fmt(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.2f", x) }'
}
med() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print 100; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# One measured run: start a fresh server, run perfdhcp, read server CPU.
# Appends "rate loss% replies cpu_ms_per_1000 p50 p99 [leasecheck]" to $W/rows.
# MODE proxy: DISCOVER/OFFER; full: DORA, then SIGKILL and count leases.
one_run() {
	local name=$1 mode=$2 rate=$3 i=$4 f="$W/pd-$1-$2-$3-$4.out" t0 t1 sent rcv loss rps cpu p50 p99 check="-" s0 c0 sdrop cdrop
	start_server "$name" "$mode"
	s0=$(rcvbuf_errors $NS_S) c0=$(rcvbuf_errors $NS_C)
	t0=$(cpu_ticks "$SRV_PID")
	if [ "$mode" = proxy ]; then
		perfdhcp_run "$f" "$rate" -i -x t "${PXE_OPTS[@]}"
		t1=$(cpu_ticks "$SRV_PID")
		sent=$(stat_of "$f" DISCOVER-OFFER "sent packets")
		rcv=$(stat_of "$f" DISCOVER-OFFER "received packets")
		p50=$(lat "$f" DISCOVER-OFFER 0.5) p99=$(lat "$f" DISCOVER-OFFER 0.99)
	else
		perfdhcp_run "$f" "$rate" -x tl
		t1=$(cpu_ticks "$SRV_PID")
		# Loss of whole exchanges: DISCOVERs sent vs ACKs received.
		sent=$(stat_of "$f" DISCOVER-OFFER "sent packets")
		rcv=$(stat_of "$f" REQUEST-ACK "received packets")
		p50=$(lat "$f" REQUEST-ACK 0.5) p99=$(lat "$f" REQUEST-ACK 0.99)
	fi
	sdrop=$(($(rcvbuf_errors $NS_S) - s0)) cdrop=$(($(rcvbuf_errors $NS_C) - c0))
	if [ "$mode/$name" = full/stagehand ]; then
		# Durability: SIGKILL (no shutdown path runs), then every
		# ACKed lease must be in the file.
		stop_server KILL
		check=$("$W/leasecheck" -data "$W/data" -perfdhcp "$f" 2>>"$W/leasecheck.err" || true)
		check=${check:-"leasecheck failed"}
	else
		stop_server TERM
	fi
	sent=${sent:-0} rcv=${rcv:-0}
	loss=$(awk -v s="$sent" -v r="$rcv" 'BEGIN { printf "%.2f", s ? (s - r) * 100 / s : 100 }')
	rps=$(awk -v r="$rcv" -v d="$DUR" 'BEGIN { printf "%.0f", r / d }')
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$rcv" 'BEGIN { printf "%.1f", r ? t * 1000 / hz / r * 1000 : 0 }')
	echo "$rate $loss $rps $cpu $p50 $p99 ${check// /_} $sdrop $cdrop" >>"$W/rows-$name-$mode"
	log "$name $mode rate=$rate run=$i sent=$sent replies=$rcv loss=$loss% cpu=${cpu}ms/1000 p50=${p50}ms p99=${p99}ms rcvbuf-drops server=$sdrop client=$cdrop $check"
}

# ramp NAME MODE RATES: each rate RUNS times, under the lock, until the
# median loss reaches 1 %. Prints the knee rate.
ramp() {
	local name=$1 mode=$2 rate knee=""
	: >"$W/rows-$name-$mode"
	for rate in $3; do
		for i in $(seq "$RUNS"); do one_run "$name" "$mode" "$rate" "$i"; done
		if awk -v r="$rate" '$1 == r { print $2 }' "$W/rows-$name-$mode" | med | awk '{ exit !($1 < 1) }'; then
			knee=$rate
		else
			break
		fi
	done
	echo "${knee:-none}" >"$W/knee-$name-$mode"
}

export -f ramp one_run start_server stop_server wait_port67 cpu_ticks rcvbuf_errors perfdhcp_run stat_of lat med log
export W RUNS DUR NS_S NS_C IF_S IF_C SIP CIP RANGE_START RANGE_END CLK_TCK VCI SRV_PID
# Arrays do not export; the lock wraps a bash that rebuilds PXE_OPTS.
locked() {
	flock "$LOCK" bash -c 'set -euo pipefail; PXE_OPTS=(-o "60,$VCI" -o 93,0000 -o 94,010201 -o 97,00564d4a2c3b1f2e4d5c6b7a8f9e0d1c2b); SRV_PID=""; trap "[ -n \"\$SRV_PID\" ] && kill -9 \$SRV_PID 2>/dev/null; true" EXIT; "$@"' _ "$@"
}

WORKLOADS=${WORKLOADS:-"stagehand/proxy dnsmasq/proxy stagehand/full dnsmasq/full"}
for wl in $WORKLOADS; do
	name=${wl%/*} mode=${wl#*/}
	case $wl in
	*/proxy) rates=$PROXY_RATES ;;
	stagehand/full) rates=$FULL_RATES ;;
	dnsmasq/full) rates=$DNSMASQ_FULL_RATES ;;
	esac
	log "== $wl: rates $rates, $RUNS runs of ${DUR}s each (waiting for $LOCK)"
	locked ramp "$name" "$mode" "$rates"
done

# ---- report ----
row_at() { # NAME MODE RATE COLUMN → "MED (MIN–MAX)"
	awk -v r="$3" -v c="$4" '$1 == r { print $c }' "$W/rows-$1-$2" | summ
}
knee() { cat "$W/knee-$1-$2" 2>/dev/null || echo none; }
figure() { # NAME MODE COLUMN → median at the knee
	local k
	k=$(knee "$1" "$2")
	[ "$k" = none ] && { echo 0; return; }
	awk -v r="$k" -v c="$3" '$1 == r { print $c }' "$W/rows-$1-$2" | med
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
# verdict US PEER TARGET: "**R×**: target ≥ T× met" or "... not met (short by N %)".
verdict() {
	awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN {
		if (b <= 0) { print "n/a (no peer figure)"; exit }
		r = a / b
		if (r >= t) printf "**%.2f×**: target ≥ %s× met\n", r, t
		else printf "**%.2f×**: target ≥ %s× not met (short by %.1f %%)\n", r, t, (t - r) * 100 / t }'
}

table() { # MODE UNIT
	local name k
	echo "| server | highest offered rate with median loss < 1 % | replies/s at that rate | loss % | server CPU, ms per 1000 $2 | median delay, ms | p99 delay, ms |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for name in stagehand dnsmasq; do
		[ -f "$W/rows-$name-$1" ] || continue
		k=$(knee "$name" "$1")
		if [ "$k" = none ]; then
			echo "| $name | none (loss ≥ 1 % at the lowest rate) | | | | | |"
			continue
		fi
		echo "| $name | $k/s | $(row_at "$name" "$1" "$k" 3) | $(row_at "$name" "$1" "$k" 2) | $(row_at "$name" "$1" "$k" 4) | $(row_at "$name" "$1" "$k" 5) | $(row_at "$name" "$1" "$k" 6) |"
	done
}

all_rows() { # MODE
	local name
	echo "| server | offered/s | run | replies/s | loss % | CPU ms/1000 | p50 ms | p99 ms | receive-buffer drops, server / client | leases after SIGKILL |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for name in stagehand dnsmasq; do
		[ -f "$W/rows-$name-$1" ] || continue
		awk -v n="$name" '{ c[$1]++; printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s / %s | %s |\n", n, $1, c[$1], $3, $2, $4, $5, $6, $8, $9, $7 }' "$W/rows-$name-$1"
	done
}

proxy_verdict=$(verdict "$(figure stagehand proxy 3)" "$(figure dnsmasq proxy 3)" 1.0)
full_verdict=$(verdict "$(figure stagehand full 3)" "$(figure dnsmasq full 3)" 10)
proxy_cpu=$(ratio "$(figure stagehand proxy 4)" "$(figure dnsmasq proxy 4)")
full_cpu=$(ratio "$(figure stagehand full 4)" "$(figure dnsmasq full 4)")
lease_lines=$(awk '$7 != "-" { print $7 }' "$W/rows-stagehand-full" 2>/dev/null || true)
lease_total=$(printf '%s\n' "$lease_lines" | grep -c . || true)
lease_ok=$(printf '%s\n' "$lease_lines" | grep -c 'missing=0$' || true)

mkdir -p "$(dirname "$OUT")"
{
	cat <<EOF
## DHCP (proxyDHCP and full DHCP)

Written by \`bench/dhcp/run.sh\` on $(date -u +%Y-%m-%d). Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r).
Peers: dnsmasq $(dnsmasq --version | awk 'NR == 1 { print $3 }'), perfdhcp $(perfdhcp -v 2>&1 | awk '/VERSION/ { print $2 }') (Debian kea-admin). stagehand $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- dhcp inventory 2>/dev/null || echo " + uncommitted changes in dhcp/ or inventory/"), $(go version | cut -d' ' -f3).

Method: server in namespace \`$NS_S\` pinned to CPU 1 (\`taskset -c 1\`), perfdhcp in \`$NS_C\` pinned to CPU 0, joined by a veth ($SIP/$PREFIX ↔ $CIP/$PREFIX). perfdhcp is a relay (\`-l $CIP\`, giaddr set) with \`-M\` 10 000 random MACs. Each offered rate is run $RUNS times for ${DUR} s, each run against a freshly started server with empty state (data dir / lease file on ext4); the ramp stops at the first rate whose median loss is ≥ 1 %. Server CPU is utime+stime of the server PID from /proc/PID/stat over the run, divided by replies. Delays are perfdhcp's per-exchange timers (\`-x t\`): DISCOVER→OFFER for proxy, REQUEST→ACK (the durable step) for full. Every figure is "median (min–max)" over the $RUNS runs.

### proxyDHCP: DISCOVER → OFFER for PXE clients

stagehand: \`stagehand serve --interface $IF_S --dhcp-mode proxy --dhcp-trusted-relays $CIP --unknown-hosts discover\` (every PXE client answered; the perfdhcp MACs are not in the inventory).
dnsmasq: \`dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=$IF_S --dhcp-range=10.250.0.0,proxy --pxe-service=x86PC,stagehand,undionly.kpxe\`.
Client: \`perfdhcp -4 -i -r RATE -p $DUR -l $CIP -M macs.txt -o 60,$VCI -o 93,0000 -o 94,010201 -o 97,00<GUID> -x t $SIP\`.

$(table proxy offers)

Verdict, stagehand / dnsmasq in offers/s at the highest rate under 1 % loss: $proxy_verdict. Server CPU per offer at that rate, stagehand / dnsmasq: $proxy_cpu (lower is better). Near the knee both servers run into the client's limit (one pinned perfdhcp sends ~15 000 DISCOVERs/s here and then drops replies in its own socket: the "client" receive-buffer drops in "Every run"), so the throughput ratio carries the client's noise; CPU per offer does not.

### Full DHCP with durable leases: DORA

stagehand: \`stagehand serve --interface $IF_S --dhcp-mode full --dhcp-range $RANGE_START-$RANGE_END --dhcp-trusted-relays $CIP --unknown-hosts discover\` (leases in bbolt; an ACK is sent only after its lease is committed).
dnsmasq: \`dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=$IF_S --no-ping --dhcp-range=$RANGE_START,$RANGE_END,1h --dhcp-lease-max=20000 --dhcp-leasefile=FILE\`.
Client: \`perfdhcp -4 -r RATE -p $DUR -l $CIP -M macs.txt -x tl $SIP\` (loss = 1 − ACKs received / DISCOVERs sent; replies/s = ACKs per second).

$(table full "DORA exchanges")

Verdict, stagehand / dnsmasq in DORA/s at the highest rate under 1 % loss: $full_verdict. Server CPU per DORA at that rate, stagehand / dnsmasq: $full_cpu.

Durability: after every stagehand full-mode run the server is killed with SIGKILL and \`bench/dhcp/leasecheck\` opens its bbolt file and looks up every lease perfdhcp saw ACKed (\`-x l\`, last address per MAC): **$lease_ok of $lease_total runs** had every ACKed lease in the store (\`missing=0\`; acks counts ACKs, distinct the MACs among them, perfdhcp draws MACs from the list at random).

<details><summary>Every run</summary>

proxy:

$(all_rows proxy)

full:

$(all_rows full)

</details>
EOF
	if [ -f "$ROOT/bench/dhcp/notes.md" ]; then
		echo
		cat "$ROOT/bench/dhcp/notes.md"
	fi
} >"$OUT"
log "wrote $OUT"
