// Package metrics writes Prometheus' text exposition format (version
// 0.0.4) for stagehand's counters. It is deliberately tiny: the servers
// keep their own atomic counters (dhcp.Stats, tftp.Stats), and a scrape
// reads them; only HTTP request counts and the install-duration
// histogram, which no server owns, live here.
package metrics

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Writer emits metric families; each family's HELP and TYPE lines are
// written once, before its first sample.
type Writer struct {
	w    io.Writer
	seen map[string]bool
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, seen: map[string]bool{}} }

func (mw *Writer) header(name, typ, help string) {
	if mw.seen[name] {
		return
	}
	mw.seen[name] = true
	fmt.Fprintf(mw.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// L builds labels from alternating names and values.
func L(kv ...string) []Label {
	out := make([]Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Label{kv[i], kv[i+1]})
	}
	return out
}

func escape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func (mw *Writer) sample(name string, labels []Label, v float64) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name + `="` + escape(l.Value) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
	io.WriteString(mw.w, b.String())
}

// Counter writes one sample of a counter family.
func (mw *Writer) Counter(name, help string, labels []Label, v float64) {
	mw.header(name, "counter", help)
	mw.sample(name, labels, v)
}

// Gauge writes one sample of a gauge family.
func (mw *Writer) Gauge(name, help string, labels []Label, v float64) {
	mw.header(name, "gauge", help)
	mw.sample(name, labels, v)
}

// Histogram counts observations into fixed buckets for the life of the
// process, as Prometheus expects of a histogram: its count and sum only
// grow, so a scrape never sees them fall except across a restart. Safe
// for concurrent use.
type Histogram struct {
	bounds []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
}

// NewHistogram builds a histogram with the given upper bounds, which must
// be sorted ascending; +Inf is implied.
func NewHistogram(bounds ...float64) *Histogram {
	if !sort.Float64sAreSorted(bounds) {
		panic("metrics: histogram bounds not sorted")
	}
	return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v: le is inclusive
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

// Write emits the family: cumulative buckets, sum and count.
func (h *Histogram) Write(mw *Writer, name, help string) { h.WriteLabeled(mw, name, help, nil) }

// WriteLabeled emits the histogram as the series of name with labels:
// one histogram of a family that several write (one per phase).
func (h *Histogram) WriteLabeled(mw *Writer, name, help string, labels []Label) {
	h.mu.Lock()
	counts := append([]uint64(nil), h.counts...)
	sum := h.sum
	h.mu.Unlock()
	mw.header(name, "histogram", help)
	with := func(kv ...string) []Label { return append(slices.Clone(labels), L(kv...)...) }
	var cum uint64
	for i, le := range h.bounds {
		cum += counts[i]
		mw.sample(name+"_bucket", with("le", strconv.FormatFloat(le, 'g', -1, 64)), float64(cum))
	}
	cum += counts[len(h.bounds)]
	mw.sample(name+"_bucket", with("le", "+Inf"), float64(cum))
	mw.sample(name+"_sum", labels, sum)
	mw.sample(name+"_count", labels, float64(cum))
}

// RequestCounter counts HTTP requests by route and status code. Safe for
// concurrent use; the set of keys is bounded by the router's routes.
type RequestCounter struct {
	mu sync.RWMutex
	m  map[[2]string]*atomic.Uint64
}

// Inc counts one request.
func (c *RequestCounter) Inc(route string, code int) {
	key := [2]string{route, strconv.Itoa(code)}
	c.mu.RLock()
	n, ok := c.m[key]
	c.mu.RUnlock()
	if !ok {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[[2]string]*atomic.Uint64{}
		}
		if n, ok = c.m[key]; !ok {
			n = new(atomic.Uint64)
			c.m[key] = n
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// Write emits the counts as name{route,code}, sorted for stable output.
func (c *RequestCounter) Write(mw *Writer, name, help string) {
	c.mu.RLock()
	keys := make([][2]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	c.mu.RUnlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	mw.header(name, "counter", help)
	for _, k := range keys {
		c.mu.RLock()
		v := c.m[k].Load()
		c.mu.RUnlock()
		mw.sample(name, L("route", k[0], "code", k[1]), float64(v))
	}
}
