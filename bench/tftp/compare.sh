#!/usr/bin/env bash
# bench/tftp/compare.sh — before/after figures for a change to tftp/: runs
# two or more builds of bench/tftp/server in turn on loopback (server pinned
# to CPU 1, bench/tftp/loadclient to CPU 0) and prints, per run, aggregate
# MB/s and server CPU (utime+stime) per transfer's worth of bytes.
#
#   bench/tftp/compare.sh FILE CLIENTS DURATION REPS SERVER_BIN...
#
# FILE is ipxe.efi or undionly.kpxe (copied from /usr/lib/ipxe).
set -euo pipefail
file=$1 c=$2 dur=$3 reps=$4
shift 4
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/shb-tftp-compare.XXXXXX)
sp=""
trap '[ -n "$sp" ] && kill "$sp" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/root"
cp -L "/usr/lib/ipxe/$file" "$work/root/"
go build -o "$work/loadclient" ./bench/tftp/loadclient
tck=$(getconf CLK_TCK)
exec 9>/tmp/stagehand-bench.lock
flock 9
for rep in $(seq 1 "$reps"); do
	for bin in "$@"; do
		taskset -c 1 "$bin" -addr 127.0.0.1:6971 -dir "$work/root" 2>/dev/null &
		sp=$!
		sleep 0.5
		c0=$(awk '{print $14+$15}' "/proc/$sp/stat")
		out=$(taskset -c 0 "$work/loadclient" -server 127.0.0.1:6971 -file "$file" -ref "$work/root/$file" -c "$c" -d "$dur")
		c1=$(awk '{print $14+$15}' "/proc/$sp/stat")
		kill -INT "$sp"
		wait "$sp" || true
		sp=""
		echo "$out" | awk -v bin="$(basename "$bin")" -v rep="$rep" -v t=$((c1 - c0)) -v hz="$tck" '{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			printf "%s rep=%s mbps=%s fail=%s cpu_ms_per_transfer=%.2f\n", bin, rep, v["mbps"], v["fail"], t*1000/hz/v["equiv"]
		}'
	done
done
