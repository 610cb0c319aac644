package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StepStats summarises one step's latencies, in milliseconds.
type StepStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50ms"`
	P99   float64 `json:"p99ms"`
	Max   float64 `json:"maxms"`
}

func summarize(ds []time.Duration) StepStats {
	if len(ds) == 0 {
		return StepStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return StepStats{Count: len(s), P50: ms(percentile(s, 50)), P99: ms(percentile(s, 99)), Max: ms(s[len(s)-1])}
}

// percentile is the nearest-rank percentile of sorted s (p in 0..100].
func percentile[T any](s []T, p float64) T {
	rank := int(p/100*float64(len(s)) + 0.999999)
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// procUsage is a process's CPU time and memory from /proc.
type procUsage struct {
	cpu   float64 // utime+stime, seconds
	rssKB int64   // VmRSS
	hwmKB int64   // VmHWM: peak RSS since start
}

// clkTck is USER_HZ, which Linux fixes at 100 on x86 for /proc/PID/stat.
const clkTck = 100

func readProc(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	if u.cpu, err = parseStatCPU(string(stat)); err != nil {
		return u, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	u.rssKB = statusKB(string(status), "VmRSS:")
	u.hwmKB = statusKB(string(status), "VmHWM:")
	return u, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15 of proc(5)) in
// seconds. The command name (field 2) may hold spaces and parentheses, so
// fields are counted after its last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return float64(ut+st) / clkTck, nil
}

// statusKB returns the value in kB of a /proc/PID/status line, or -1.
func statusKB(status, key string) int64 {
	for l := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}
