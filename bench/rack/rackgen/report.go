package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Targets of issue 4, item 5.
const (
	targetN1000Seconds = 60
	targetPeakMB       = 200
	targetIdleMB       = 40
)

type run struct {
	res     Result
	verdict *Verdict
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory with load-N-R.json and verify-N-R.json files")
	out := fs.String("o", "", "Markdown fragment to write (default standard output)")
	head := fs.String("head", "", "file with the fragment's opening (machine, commands), copied first")
	tail := fs.String("tail", "", "file copied after the tables (profile, notes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	runs, err := readRuns(*dir)
	if err != nil {
		return err
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, p := range []string{*head} {
		if p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			bw.Write(b)
		}
	}
	keys := make([]sizes, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	// Largest artifacts first: the realistic workload the targets are for.
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].kernel+keys[i].initrd > keys[j].kernel+keys[j].initrd
	})
	for i, k := range keys {
		writeTables(bw, runs[k], i == 0)
	}
	if *tail != "" {
		b, err := os.ReadFile(*tail)
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	return nil
}

// sizes are a run's artifact sizes: runs are grouped by them.
type sizes struct{ kernel, initrd int64 }

// readRuns loads load-N-R.json with its verify-N-R.json, grouped by N.
func readRuns(dir string) (map[sizes]map[int][]run, error) {
	files, err := filepath.Glob(filepath.Join(dir, "load-*.json"))
	if err != nil {
		return nil, err
	}
	out := map[sizes]map[int][]run{}
	for _, f := range files {
		var r run
		if err := readJSON(f, &r.res); err != nil {
			return nil, err
		}
		vf := filepath.Join(dir, "verify-"+strings.TrimPrefix(filepath.Base(f), "load-"))
		var v Verdict
		if err := readJSON(vf, &v); err == nil {
			r.verdict = &v
		}
		k := sizes{r.res.KernelBytes, r.res.InitrdBytes}
		if out[k] == nil {
			out[k] = map[int][]run{}
		}
		out[k][r.res.N] = append(out[k][r.res.N], r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no load-*.json in %s", dir)
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// spread is "median (min–max)" of xs, formatted with f.
func spread(xs []float64, f string) string {
	if len(xs) == 0 {
		return "–"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return fmt.Sprintf(f, med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", med, s[0], s[len(s)-1])
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func collect(rs []run, f func(run) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func writeTables(w io.Writer, byN map[int][]run, main bool) {
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	r0 := byN[ns[0]][0].res
	title := "Control plane only: tiny artifacts, so the HTTP bulk transfers do not hide the per-host cost."
	if main {
		title = "The rack: artifacts of a realistic size for kernel and initrd (the live root image is not fetched)."
	}
	fmt.Fprintf(w, "### %s\n\nArtifacts: kernel %s, initrd %s per host; firmware %s; at most %d hosts booting at once, powered on over %.0f s.\n\n",
		title, mib(r0.KernelBytes), mib(r0.InitrdBytes), r0.Arch, r0.Concurrency, r0.RampSeconds)

	fmt.Fprintln(w, "| hosts | runs | end to end (s) | hosts/s | artifacts GB/s | failed hosts | DHCP retransmits | server CPU (s) | server CPU per host (ms) | idle RSS (MB) | peak RSS (MB) | inventory consistent |")
	fmt.Fprintln(w, "| ---: | ---: | --- | --- | --- | ---: | ---: | --- | --- | --- | --- | --- |")
	for _, n := range ns {
		rs := byN[n]
		failed, retrans, consistent := 0, 0, 0
		for _, r := range rs {
			failed += r.res.Failed
			retrans += r.res.Retransmits
			if r.verdict != nil && r.verdict.NumProblems == 0 {
				consistent++
			}
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %d | %d | %s | %s | %s | %s | %d of %d runs |\n", n, len(rs),
			spread(collect(rs, func(r run) float64 { return r.res.TotalSeconds }), "%.1f"),
			spread(collect(rs, func(r run) float64 { return float64(r.res.OK) / r.res.TotalSeconds }), "%.0f"),
			spread(collect(rs, func(r run) float64 { return float64(r.res.BytesReceived) / 1e9 / r.res.TotalSeconds }), "%.2f"),
			failed, retrans,
			spread(collect(rs, func(r run) float64 { return r.res.Server.CPUSeconds }), "%.1f"),
			spread(collect(rs, func(r run) float64 { return 1000 * r.res.Server.CPUSeconds / float64(n) }), "%.1f"),
			spread(collect(rs, func(r run) float64 { return float64(r.res.Server.RSSBeforeK) / 1024 }), "%.1f"),
			spread(collect(rs, func(r run) float64 { return float64(r.res.Server.HWMAfterK) / 1024 }), "%.1f"),
			consistent, len(rs))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Per-step latency as each host saw it, in ms: p50 / p99, each the median over the runs.")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| step |")
	for _, n := range ns {
		fmt.Fprintf(w, " N=%d |", n)
	}
	fmt.Fprint(w, "\n| --- |")
	for range ns {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	row := func(name string, get func(Result) StepStats) {
		fmt.Fprintf(w, "| %s |", name)
		for _, n := range ns {
			rs := byN[n]
			p50 := median(collect(rs, func(r run) float64 { return get(r.res).P50 }))
			p99 := median(collect(rs, func(r run) float64 { return get(r.res).P99 }))
			fmt.Fprintf(w, " %s / %s |", ms(p50), ms(p99))
		}
		fmt.Fprintln(w)
	}
	for _, s := range steps {
		row(s, func(r Result) StepStats { return r.Steps[s] })
	}
	row("whole host", func(r Result) StepStats { return r.HostTotal })
	fmt.Fprintln(w)

	// Verdicts against the targets.
	var lines []string
	if rs, ok := byN[1000]; ok && main {
		t := median(collect(rs, func(r run) float64 { return r.res.TotalSeconds }))
		lines = append(lines, verdict(t < targetN1000Seconds, fmt.Sprintf("N=1000 end to end %.1f s (target < %d s)", t, targetN1000Seconds)))
	}
	var peak, idle float64
	var failed, bad int
	for _, n := range ns {
		for _, r := range byN[n] {
			peak = max(peak, float64(r.res.Server.HWMAfterK)/1024)
			idle = max(idle, float64(r.res.Server.RSSBeforeK)/1024)
			failed += r.res.Failed
			if r.verdict == nil || r.verdict.NumProblems > 0 {
				bad++
			}
		}
	}
	lines = append(lines,
		verdict(peak < targetPeakMB, fmt.Sprintf("worst peak RSS %.1f MB (target < %d MB)", peak, targetPeakMB)),
		verdict(idle < targetIdleMB, fmt.Sprintf("worst idle RSS %.1f MB with the rack loaded (target < %d MB)", idle, targetIdleMB)),
		verdict(failed == 0, fmt.Sprintf("%d failed hosts over all runs (target 0)", failed)),
		verdict(bad == 0, fmt.Sprintf("%d runs with an inconsistent inventory (target 0)", bad)))
	for _, l := range lines {
		fmt.Fprintln(w, "- "+l)
	}
	fmt.Fprintln(w)
	listed := 0
	for _, n := range ns {
		for _, r := range byN[n] {
			listed += len(r.res.Failures)
			if r.verdict != nil {
				listed += len(r.verdict.Problems)
			}
			for _, f := range r.res.Failures {
				fmt.Fprintf(w, "- failure (N=%d): `%s`\n", n, f)
			}
			if r.verdict != nil {
				for _, p := range r.verdict.Problems {
					fmt.Fprintf(w, "- inventory (N=%d): `%s`\n", n, p)
				}
			}
		}
	}
	if listed > 0 {
		fmt.Fprintln(w)
	}
}

func verdict(ok bool, s string) string {
	if ok {
		return "**met**: " + s
	}
	return "**not met**: " + s
}

func ms(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func mib(b int64) string {
	if b <= 0 {
		return "(unchecked)"
	}
	return fmt.Sprintf("%g MiB", float64(b)/(1<<20))
}
