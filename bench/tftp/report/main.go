// Command report turns the raw results of bench/tftp/run.sh into the
// Markdown fragment docs/bench/tftp.md: medians with min–max per workload
// and server, the ratio to dnsmasq, and a verdict against the target
// (stagehand ≥ 1.0× dnsmasq's aggregate throughput at 50 and 200 clients,
// zero failed transfers).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// run is one loadclient run: one line of results.tsv.
type run struct {
	group, file, server string
	clients, blk, win   int
	cpuMS               float64
	kv                  map[string]string
}

func (r run) num(k string) float64 {
	v, err := strconv.ParseFloat(r.kv[k], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// cpuPerTransfer is server CPU milliseconds per transfer's worth of bytes
// delivered (transfers cut at the end count for their share).
func (r run) cpuPerTransfer() float64 {
	ok := r.num("equiv")
	if ok <= 0 {
		return math.Inf(1)
	}
	return r.cpuMS / ok
}

type key struct {
	group, file       string
	clients, blk, win int
}

func main() {
	results := flag.String("results", "", "results.tsv from run.sh")
	real := flag.String("real", "", "real-client results from run.sh")
	dur := flag.String("dur", "", "duration of each run")
	reps := flag.String("reps", "", "repetitions")
	machine := flag.String("machine", "", "machine description")
	versions := flag.String("versions", "", "versions of server and peers")
	commands := flag.String("commands", "", "file with the exact commands")
	notes := flag.String("notes", "", "hand-written notes appended to the fragment")
	flag.Parse()
	runs, err := readRuns(*results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()

	fmt.Fprintf(w, "## TFTP\n\n")
	fmt.Fprintf(w, "Written by `bench/tftp/run.sh`. Machine: %s. Versions: %s.\n\n", *machine, *versions)
	fmt.Fprintf(w, "Each figure is the median (min–max) of %s runs of %s; the servers take turns within each repetition. ", *reps, *dur)
	fmt.Fprintf(w, "Each run has N clients (bench/tftp/loadclient), each looping RRQ → whole transfer from a fresh port, with `tsize`, a per-packet timeout of 1 s and 5 resends. Every byte is checked (length and SHA-256). ")
	fmt.Fprintf(w, "Transfers still running when the time is up are aborted. ")
	fmt.Fprintf(w, "transfers/s counts completed transfers; MB/s (the aggregate throughput, and what \"× dnsmasq\" compares) counts every byte received in order, so a transfer cut at the end counts for what it delivered. Server CPU is user+system time of the server and its children (in.tftpd forks one per transfer), from a cpuacct cgroup per server (see the commands), divided by the bytes delivered in units of the file's size. ")
	fmt.Fprintf(w, "\"failed\" sums the failed transfers of all runs (ERROR from the server, timeout, wrong bytes).\n\n")
	if *commands != "" {
		if b, err := os.ReadFile(*commands); err == nil {
			fmt.Fprintf(w, "Commands (`$WORK/server` is `go build ./bench/tftp/server`: `tftp.Server` with `tftp.Dir`, `MaxTransfers` 1000):\n\n```\n%s```\n\n", b)
		}
	}

	groups := []struct{ id, title string }{
		{"A", "blksize 1468, no windowsize (lock-step, what PXE ROMs do)"},
		{"B", "blksize 512"},
		{"C", "blksize 1468 with windowsize (RFC 7440); dnsmasq and in.tftpd do not implement it and answer without it, so their transfers stay lock-step"},
	}
	minRatio, minAt := math.Inf(1), ""
	var ourFail, peerFail float64
	// Per group: the range of stagehand/dnsmasq ratios at 50 and 200 clients.
	groupMin, groupMax := map[string]float64{}, map[string]float64{}
	for _, g := range groups {
		var keys []key
		by := map[key]map[string][]run{}
		for _, r := range runs {
			if r.group != g.id {
				continue
			}
			k := key{r.group, r.file, r.clients, r.blk, r.win}
			if by[k] == nil {
				keys = append(keys, k)
				by[k] = map[string][]run{}
			}
			by[k][r.server] = append(by[k][r.server], r)
		}
		if len(keys) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n", g.title)
		fmt.Fprintf(w, "| file | clients | windowsize asked | server | transfers/s | MB/s | × dnsmasq | server CPU per transfer (ms) | failed | p50 transfer (ms) | negotiated blksize / windowsize |\n")
		fmt.Fprintf(w, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, k := range keys {
			base := median(field(by[k]["dnsmasq"], func(r run) float64 { return r.num("mbps") }))
			for _, srv := range []string{"stagehand", "dnsmasq", "in.tftpd"} {
				rs := by[k][srv]
				if len(rs) == 0 {
					continue
				}
				tps := field(rs, func(r run) float64 { return r.num("tps") })
				mbps := field(rs, func(r run) float64 { return r.num("mbps") })
				cpu := field(rs, run.cpuPerTransfer)
				p50 := field(rs, func(r run) float64 { return r.num("p50ms") })
				fail := sum(field(rs, func(r run) float64 { return r.num("fail") }))
				ratio := "–"
				if base > 0 {
					x := median(mbps) / base
					ratio = fmt.Sprintf("%.2f×", x)
					if srv == "stagehand" && k.clients >= 50 {
						if x < minRatio {
							minRatio, minAt = x, fmt.Sprintf("%s, %d clients, blksize %d, windowsize %s", k.file, k.clients, k.blk, winName(k.win))
						}
						if v, ok := groupMin[g.id]; !ok || x < v {
							groupMin[g.id] = x
						}
						groupMax[g.id] = max(groupMax[g.id], x)
					}
				}
				if srv == "stagehand" {
					ourFail += fail
				} else {
					peerFail += fail
				}
				name := srv
				if srv == "stagehand" {
					name = "**stagehand**"
				}
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %.0f | %s | %s / %s |\n",
					k.file, k.clients, winName(k.win), name, spread(tps, "%.0f"), spread(mbps, "%.1f"), ratio,
					spread(cpu, "%.2f"), fail, spread(p50, "%.0f"), rs[0].kv["blksize"], rs[0].kv["windowsize"])
			}
		}
		fmt.Fprintln(w)
	}

	if *real != "" {
		writeReal(w, *real)
	}

	verdict := "MET"
	if minRatio < 1 || ourFail > 0 {
		verdict = "NOT MET"
	}
	if math.IsInf(minRatio, 1) {
		fmt.Fprintf(w, "**Verdict:** no stagehand/dnsmasq pair at 50 or 200 clients was measured.\n\n")
	} else {
		fmt.Fprintf(w, "**Verdict: target %s.** Target: ≥ 1.0× dnsmasq's aggregate throughput at 50 and 200 clients, zero failed transfers. "+
			"Lowest stagehand/dnsmasq ratio: %.2f× (%s); failed stagehand transfers: %.0f (peers: %.0f).", verdict, minRatio, minAt, ourFail, peerFail)
		for _, g := range groups {
			if v, ok := groupMin[g.id]; ok {
				met := "met"
				if v < 1 {
					met = fmt.Sprintf("not met, short by up to %.0f%%", (1-v)*100)
				}
				fmt.Fprintf(w, " %s: %.2f×–%.2f× (%s).", strings.SplitN(g.title, " (", 2)[0], v, groupMax[g.id], met)
			}
		}
		fmt.Fprintf(w, "\n\n")
	}
	if *notes != "" {
		if b, err := os.ReadFile(*notes); err == nil {
			w.Write(b)
		}
	}
}

func winName(w int) string {
	if w == 0 {
		return "–"
	}
	return strconv.Itoa(w)
}

func writeReal(w io.Writer, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	type rk struct{ server, file string }
	var order []rk
	times := map[rk][]float64{}
	exact := map[rk][2]int{} // curl exact/total
	atftp := map[rk]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 5 {
			continue
		}
		k := rk{c[1], c[2]}
		if _, ok := exact[k]; !ok {
			order = append(order, k)
			exact[k] = [2]int{}
		}
		switch c[0] {
		case "curl":
			if t, err := strconv.ParseFloat(c[3], 64); err == nil {
				times[k] = append(times[k], t*1000)
			}
			e := exact[k]
			e[1]++
			if c[4] == "yes" {
				e[0]++
			}
			exact[k] = e
		case "atftp":
			atftp[k] = c[4]
		}
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintf(w, "### Real clients, one at a time (blksize 1468)\n\n")
	fmt.Fprintf(w, "| server | file | curl `%%{time_total}` (ms), 5 runs | curl byte-exact | atftp byte-exact |\n| --- | --- | ---: | ---: | --- |\n")
	for _, k := range order {
		e := exact[k]
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %s |\n", k.server, k.file, spread(times[k], "%.1f"), e[0], e[1], atftp[k])
	}
	fmt.Fprintln(w)
}

func readRuns(path string) ([]run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []run
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.SplitN(sc.Text(), "\t", 9)
		if len(c) != 9 {
			continue
		}
		r := run{group: c[0], file: c[1], server: c[5], kv: map[string]string{}}
		r.clients, _ = strconv.Atoi(c[2])
		r.blk, _ = strconv.Atoi(c[3])
		r.win, _ = strconv.Atoi(c[4])
		r.cpuMS, _ = strconv.ParseFloat(c[7], 64)
		for _, f := range strings.Fields(c[8]) {
			if k, v, ok := strings.Cut(f, "="); ok {
				r.kv[k] = v
			}
		}
		runs = append(runs, r)
	}
	return runs, sc.Err()
}

func field(rs []run, f func(run) float64) []float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, f(r))
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		if !math.IsNaN(x) {
			t += x
		}
	}
	return t
}

// spread formats "median (min–max)".
func spread(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	f := func(x float64) string {
		if math.IsInf(x, 1) {
			return "∞"
		}
		return fmt.Sprintf(format, x)
	}
	if len(v) == 1 {
		return f(v[0])
	}
	return fmt.Sprintf("%s (%s–%s)", f(median(v)), f(slices.Min(v)), f(slices.Max(v)))
}
