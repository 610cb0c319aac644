package boot

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Config is one way of booting the VM.
type Config struct {
	Name  string
	Label string
	About string // how it is set up, for the report
}

// Configs, in the order the runs interleave them and the report lists them.
var Configs = []Config{
	{"full", "stagehand full", "`stagehand serve --dhcp-mode full --dhcp-range .100-.150`, the host in the inventory with the lab profile"},
	{"proxy", "stagehand proxy", "dnsmasq as the site's DHCP server in a namespace of its own on the bridge (`--dhcp-range .100,.150`), `stagehand serve --dhcp-mode proxy` beside it"},
	{"glue", "glue", "dnsmasq full DHCP in its own namespace (`--dhcp-boot=http://.1:8080/boot.ipxe --dhcp-option-force=60,PXEClient`: without the PXEClient vendor class iPXE waits ~3 s for a ProxyDHCP offer before it takes dnsmasq's), nginx 1 worker serving the script, kernel, initrd and user-data as files and the callback as `location /callback/ { return 200; }`"},
	{"full-ra", "stagehand full + RA sender", "as stagehand full, plus a dnsmasq that sends IPv6 router advertisements (ra-only, router lifetime 0, as lab.RunRA) from a namespace of its own on the bridge"},
}

// ConfigNamed returns the configuration called name.
func ConfigNamed(name string) (Config, bool) {
	for _, c := range Configs {
		if c.Name == name {
			return c, true
		}
	}
	return Config{}, false
}

// Run is one measured boot.
type Run struct {
	Config string `json:"config"`
	N      int    `json:"n"`
	Marks
	// Timeline is stagehand's own account of the attempt (host show -o
	// json, field timeline, latest attempt): phase → seconds, in order.
	Timeline []PhaseSeconds `json:"timeline,omitempty"`
	Problem  string         `json:"problem,omitempty"` // why the run does not count
}

// PhaseSeconds is one phase of stagehand's timeline.
type PhaseSeconds struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
}

// Stat is the median and range of some values.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// StatOf returns the median (mean of the middle two for an even count),
// minimum and maximum; N is 0 for no values.
func StatOf(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (s Stat) String() string { return s.format("%.2f") }

// format writes "median (min–max)" with verb for each number.
func (s Stat) format(verb string) string {
	switch {
	case s.N == 0:
		return "–"
	case s.N == 1 || s.Min == s.Max:
		return fmt.Sprintf(verb, s.Median)
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.Median, s.Min, s.Max)
}

func ratio(a, b Stat) string {
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.Median/b.Median)
}

// report holds the runs that count, by configuration, in Configs order.
type report struct {
	configs []Config
	runs    map[string][]Run
	failed  []Run
}

func newReport(runs []Run) *report {
	r := &report{runs: map[string][]Run{}}
	for _, run := range runs {
		if run.Problem != "" {
			r.failed = append(r.failed, run)
			continue
		}
		r.runs[run.Config] = append(r.runs[run.Config], run)
	}
	for _, c := range Configs {
		if len(r.runs[c.Name]) > 0 {
			r.configs = append(r.configs, c)
		}
	}
	return r
}

// stat gathers f over one configuration's runs; f reports false where the
// run has no value.
func (r *report) stat(config string, f func(Run) (float64, bool)) Stat {
	var v []float64
	for _, run := range r.runs[config] {
		if x, ok := f(run); ok {
			v = append(v, x)
		}
	}
	return StatOf(v)
}

func at(name string) func(Run) (float64, bool) {
	return func(run Run) (float64, bool) { x, ok := run.At[name]; return x, ok }
}

func between(from, to string) func(Run) (float64, bool) {
	return func(run Run) (float64, bool) {
		a, ok1 := run.At[from]
		if from == "power-on" {
			a, ok1 = 0, true
		}
		b, ok2 := run.At[to]
		return b - a, ok1 && ok2
	}
}

// Write writes the figures of runs as markdown tables: time from power-on
// to every milestone, the phases between them, stagehand's own timeline,
// and the verdict lines bench/assemble.sh gathers.
func Write(w io.Writer, runs []Run) {
	r := newReport(runs)
	fmt.Fprintln(w, "Configurations:")
	fmt.Fprintln(w)
	for _, c := range r.configs {
		fmt.Fprintf(w, "- **%s** (`%s`): %s.\n", c.Label, c.Name, c.About)
	}
	fmt.Fprintln(w)
	r.table(w, "Time from power-on to each milestone, seconds", "milestone", milestoneRows())
	r.table(w, "Phases: time between consecutive milestones, seconds", "phase", phaseRows())
	r.solicitations(w)
	r.timeline(w)
	r.verdicts(w)
	for _, f := range r.failed {
		fmt.Fprintf(w, "Not counted: %s run %d: %s\n\n", f.Config, f.N, f.Problem)
	}
}

type row struct {
	label string
	f     func(Run) (float64, bool)
}

func milestoneRows() []row {
	var rows []row
	for _, m := range Milestones {
		rows = append(rows, row{m.Name + ": " + m.What, at(m.Name)})
	}
	return rows
}

func phaseRows() []row {
	rows := []row{}
	prev := "power-on"
	for _, m := range Milestones {
		rows = append(rows, row{prev + " → " + m.Name, between(prev, m.Name)})
		prev = m.Name
	}
	return rows
}

// table writes one row per row, a column per configuration (median
// (min–max)), then stagehand / glue for each stagehand configuration.
func (r *report) table(w io.Writer, title, first string, rows []row) {
	fmt.Fprintf(w, "#### %s\n\n", title)
	head := []string{first}
	for _, c := range r.configs {
		head = append(head, fmt.Sprintf("%s (n=%d)", c.Label, len(r.runs[c.Name])))
	}
	others := r.againstGlue()
	for _, c := range others {
		head = append(head, c.Label+" / glue")
	}
	writeRow(w, head)
	writeRow(w, strings.Split(strings.Repeat("---,", len(head)), ",")[:len(head)])
	for _, rw := range rows {
		cells := []string{rw.label}
		for _, c := range r.configs {
			cells = append(cells, r.stat(c.Name, rw.f).String())
		}
		for _, c := range others {
			cells = append(cells, ratio(r.stat(c.Name, rw.f), r.stat("glue", rw.f)))
		}
		writeRow(w, cells)
	}
	fmt.Fprintln(w)
}

// againstGlue returns the configurations compared with the glue: every
// stagehand one, when the glue ran.
func (r *report) againstGlue() []Config {
	if len(r.runs["glue"]) == 0 {
		return nil
	}
	var out []Config
	for _, c := range r.configs {
		if c.Name != "glue" {
			out = append(out, c)
		}
	}
	return out
}

func writeRow(w io.Writer, cells []string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func (r *report) solicitations(w io.Writer) {
	fmt.Fprintln(w, "IPv6 router solicitations the VM sent before its first HTTP request, and router advertisements that reached it")
	fmt.Fprintln(w, "in that time (median (min–max)):")
	fmt.Fprintln(w)
	writeRow(w, []string{"configuration", "solicitations", "advertisements", "first advertisement, s after power-on"})
	writeRow(w, []string{"---", "---", "---", "---"})
	for _, c := range r.configs {
		rs := r.stat(c.Name, func(run Run) (float64, bool) { return float64(run.RS), true })
		ra := r.stat(c.Name, func(run Run) (float64, bool) { return float64(run.RA), true })
		first := r.stat(c.Name, func(run Run) (float64, bool) { return run.FirstR, run.RA > 0 })
		writeRow(w, []string{c.Label, rs.format("%.0f"), ra.format("%.0f"), first.String()})
	}
	fmt.Fprintln(w)
}

// timeline writes stagehand's own phases, for the configurations whose
// runs have one.
func (r *report) timeline(w io.Writer) {
	var cols []Config
	var phases []string
	seen := map[string]bool{}
	for _, c := range r.configs {
		has := false
		for _, run := range r.runs[c.Name] {
			for _, p := range run.Timeline {
				has = true
				if !seen[p.Phase] {
					seen[p.Phase] = true
					phases = append(phases, p.Phase)
				}
			}
		}
		if has {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		fmt.Fprintln(w, "stagehand's own timeline: not available from this build (`stagehand host show MAC -o json` has no `timeline`).")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "#### stagehand's own timeline of the attempt (`stagehand host show MAC -o json`, field `timeline`), seconds")
	fmt.Fprintln(w)
	head := []string{"phase"}
	for _, c := range cols {
		head = append(head, c.Label)
	}
	writeRow(w, head)
	writeRow(w, strings.Split(strings.Repeat("---,", len(head)), ",")[:len(head)])
	for _, ph := range phases {
		cells := []string{ph}
		for _, c := range cols {
			cells = append(cells, r.stat(c.Name, func(run Run) (float64, bool) {
				for _, p := range run.Timeline {
					if p.Phase == ph {
						return p.Seconds, true
					}
				}
				return 0, false
			}).String())
		}
		writeRow(w, cells)
	}
	fmt.Fprintln(w)
}

// verdicts writes one line per comparison, starting "**Verdict" so that
// bench/assemble.sh lists it in the summary.
func (r *report) verdicts(w io.Writer) {
	installed := at("installed")
	glue := r.stat("glue", installed)
	for _, c := range r.againstGlue() {
		if c.Name == "full-ra" {
			continue
		}
		s := r.stat(c.Name, installed)
		fmt.Fprintf(w, "**Verdict**, %s / glue, power-on → installed: **%s×** (%.2f s against %.2f s, medians of %d and %d; lower is faster).\n\n",
			c.Label, ratio(s, glue), s.Median, glue.Median, s.N, glue.N)
	}
	alone, withRA := r.stat("full", installed), r.stat("full-ra", installed)
	if alone.N > 0 && withRA.N > 0 {
		q := alone.Median / withRA.Median
		met := "met"
		if q > 1.05 {
			met = "NOT met"
		}
		fmt.Fprintf(w, "**Verdict**, the demo's VM power-on → installed, stagehand alone / with an extra RA sender on the bridge: **%.2f×** (%.2f s against %.2f s, medians of %d and %d): target ≤ 1.05 %s.\n\n",
			q, alone.Median, withRA.Median, alone.N, withRA.N, met)
	}
}
