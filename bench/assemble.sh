#!/usr/bin/env bash
# Assembles docs/BENCHMARKS.md from the fragments each bench/*/run.sh writes
# to docs/bench/AREA.md. Prints to standard output.
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<HEAD
# stagehand benchmarks

Written by \`make bench\` on $(date -u +%Y-%m-%d). Each section below comes from
\`bench/<area>/run.sh\`, which installs its peer from Debian, runs server and
client in two network namespaces joined by a veth (server pinned to CPU 1,
client to CPU 0), repeats every figure at least three times and reports the
median with min–max. Server CPU per unit of work is given beside throughput:
on a 2-core machine the client is usually the bottleneck.

Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r).
Go: $(go version | cut -d' ' -f3). stagehand: $(git rev-parse --short HEAD 2>/dev/null || echo unknown).

HEAD
# The verdicts, gathered from the fragments as their scripts wrote them, so
# a reader sees every target met or missed before the detail; each area's
# notes say why a miss is a miss.
echo "## Summary: each target, as the sections below judge it"
echo
for area in dhcp tftp http rack boot; do
	f=docs/bench/$area.md
	[ -f "$f" ] || continue
	grep -E '^(Verdict|\*\*Verdict)|^- \*\*(met|not met|missed|MISSED)\*\*' "$f" |
		sed -e "s/^- //" -e "s/^/- $area: /" | sed -E 's/ Near the knee both servers run into.*$//'
done
echo
for area in dhcp tftp http rack boot; do
	f=docs/bench/$area.md
	if [ -f "$f" ]; then
		cat "$f"
		echo
	else
		echo "## $area"
		echo
		echo "(no figures: bench/$area/run.sh has not written $f)"
		echo
	fi
done
