package api_test

import (
	"bytes"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

const macB = "52:54:00:aa:00:0b"

// scrape reads /metrics of the running server and parses it with
// Prometheus' own text parser, which refuses what a Prometheus server
// would refuse (a family's TYPE after its samples, duplicate HELP, bad
// histogram series).
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	r := e.request(http.MethodGet, "/metrics", nil, bearer)
	if r.status != http.StatusOK {
		e.t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	if f := expfmt.ResponseFormat(r.header); f.FormatType() != expfmt.TypeTextPlain {
		e.t.Fatalf("/metrics Content-Type %q is not Prometheus text", r.header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, r.body)
	}
	return fams
}

func installCount(t *testing.T, fams map[string]*dto.MetricFamily) uint64 {
	t.Helper()
	f := fams["stagehand_install_duration_seconds"]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
		t.Fatalf("stagehand_install_duration_seconds is not one histogram: %v", f)
	}
	return f.Metric[0].GetHistogram().GetSampleCount()
}

func checkFamilies(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	want := map[string]dto.MetricType{
		"stagehand_hosts":                    dto.MetricType_GAUGE,
		"stagehand_hosts_stalled":            dto.MetricType_GAUGE,
		"stagehand_install_duration_seconds": dto.MetricType_HISTOGRAM,
		"stagehand_http_requests_total":      dto.MetricType_COUNTER,
		"stagehand_token_failures_total":     dto.MetricType_COUNTER,
		"stagehand_token_ratelimited_total":  dto.MetricType_COUNTER,
		"stagehand_test_extra_total":         dto.MetricType_COUNTER,
		"stagehand_goroutines":               dto.MetricType_GAUGE,
		"stagehand_open_fds":                 dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("family %s is a %s, want %s", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("family %s has no HELP", name)
		}
	}
}

// /metrics parses as Prometheus text with the families and types
// stagehand documents, and the install-duration histogram behaves as one:
// its count never falls, reprovision or not.
func TestMetricsScrape(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Metrics = func(mw *metrics.Writer) { mw.Counter("stagehand_test_extra_total", "From serve.", nil, 7) }
	})
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	e.addHost(inventory.Host{MAC: macB, Name: "node2", Profile: "edge"})

	fams := e.scrape()
	// One stagehand_hosts series per state, every state listed.
	byState := map[string]float64{}
	for _, m := range fams["stagehand_hosts"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" {
				byState[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	for _, s := range inventory.States() {
		if _, ok := byState[s.String()]; !ok {
			t.Errorf("stagehand_hosts has no series for state %s", s)
		}
	}
	if len(byState) != len(inventory.States()) || byState["ready"] != 2 {
		t.Errorf("stagehand_hosts by state = %v, want every state and ready=2", byState)
	}
	if n := installCount(t, fams); n != 0 {
		t.Fatalf("install count %d before any install", n)
	}

	install := func(mac string) {
		t.Helper()
		_, tok := e.stage2("mac=" + mac)
		if r := e.get("/userdata/" + tok); r.status != http.StatusOK {
			t.Fatalf("user-data: %d %s", r.status, r.body)
		}
		if r := e.post("/callback/"+tok+"/done", ""); r.status != http.StatusOK {
			t.Fatalf("done: %d %s", r.status, r.body)
		}
		// A repeated done is not a second completion.
		if r := e.post("/callback/"+tok+"/done", ""); r.status != http.StatusOK {
			t.Fatalf("repeated done: %d %s", r.status, r.body)
		}
	}
	install(mac1)
	install(macB)
	fams = e.scrape()
	checkFamilies(t, fams)
	if n := installCount(t, fams); n != 2 {
		t.Fatalf("install count %d after two installs, want 2", n)
	}

	// Reprovision one host: the hosts installed now fall to one, the
	// installs observed do not.
	e.opJSON(http.MethodPost, "/hosts/"+mac1+"/reprovision", "", http.StatusOK, nil)
	if n := installCount(t, e.scrape()); n != 2 {
		t.Fatalf("install count %d after a reprovision, want 2 (a falling count reads as a counter reset)", n)
	}
	install(mac1)
	fams = e.scrape()
	if n := installCount(t, fams); n != 3 {
		t.Fatalf("install count %d after the reinstall, want 3", n)
	}
	h := fams["stagehand_install_duration_seconds"].Metric[0].GetHistogram()
	last := h.Bucket[len(h.Bucket)-1]
	if last.GetUpperBound() < 4*3600 || last.GetCumulativeCount() != 3 {
		t.Errorf("largest finite bucket le=%v holds %d, want ≥ 4h and all 3 installs", last.GetUpperBound(), last.GetCumulativeCount())
	}
}
