package api

import (
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

// statusWriter records the status code. It passes ReadFrom through, so
// that http.ServeContent's copy still reaches sendfile(2): wrapping the
// ResponseWriter without it would silently move every artifact byte
// through user space.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countRequests labels each request with its route template, never the
// raw path: tokens and MACs in paths would make unbounded (and secret)
// label values.
func (s *Server) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := routeTemplate(r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.requests.Inc(route, code)
	})
}

// installBuckets are install-duration histogram bounds in seconds: a
// lab VM installs in under a minute, a real appliance in 10–40 minutes,
// and one pulling its images over a slow site link in hours.
var installBuckets = []float64{30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600}

// installHistogram is the install-duration histogram, observed once per
// completion as it is recorded (never rebuilt from the hosts installed
// now, whose number falls on reprovision), for the life of the process.
type installHistogram struct {
	once sync.Once
	h    *metrics.Histogram
}

func (ih *installHistogram) get() *metrics.Histogram {
	ih.once.Do(func() { ih.h = metrics.NewHistogram(installBuckets...) })
	return ih.h
}

// observeInstall records a completion the store has just recorded
// (changed=true): from the install script to the callback.
func (s *Server) observeInstall(h inventory.Host) {
	if h.State != inventory.StateInstalled || h.BootAt.IsZero() {
		return
	}
	s.installs.get().Observe(h.InstalledAt.Sub(h.BootAt).Seconds())
}

// phaseBuckets are boot-phase histogram bounds in seconds: a stage-1
// script follows iPXE's DHCP in milliseconds, an installer may take an
// hour to its callback.
var phaseBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// phaseHistograms are the boot-phase histograms, one per phase, observed
// once per attempt as its callback is recorded (like installHistogram).
type phaseHistograms struct {
	once sync.Once
	h    map[inventory.Phase]*metrics.Histogram
}

func (ph *phaseHistograms) get() map[inventory.Phase]*metrics.Histogram {
	ph.once.Do(func() {
		ph.h = map[inventory.Phase]*metrics.Histogram{}
		for _, p := range inventory.Phases() {
			ph.h[p] = metrics.NewHistogram(phaseBuckets...)
		}
	})
	return ph.h
}

// observePhases records the phases of the attempt whose callback the
// store has just recorded (changed=true), read back from the host's
// events: once per attempt, and never again after a restart.
func (s *Server) observePhases(mac string) {
	tl, err := s.timeline(mac)
	if err != nil || len(tl) == 0 {
		return // deleted meanwhile: nothing to observe
	}
	last := tl[len(tl)-1]
	if last.Outcome != inventory.OutcomeInstalled && last.Outcome != inventory.OutcomeFailed {
		return
	}
	hs := s.phases.get()
	for _, p := range last.Phases {
		hs[p.Phase].Observe(p.Seconds)
	}
}

func (s *Server) writePhases(mw *metrics.Writer) {
	hs := s.phases.get()
	for _, p := range inventory.Phases() {
		hs[p].WriteLabeled(mw, "stagehand_boot_phase_seconds",
			"Each phase of a boot attempt (inventory.Phases: from the previous milestone to its own), observed as the attempt's callback (installed or failed) is recorded since the process started.",
			metrics.L("phase", string(p)))
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	_, rows, err := s.hostsReport(inventory.Filter{})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	mw := metrics.NewWriter(w)
	byState := map[string]int{}
	stalled := 0
	for _, row := range rows {
		byState[row.State]++
		if row.Stalled {
			stalled++
		}
	}
	for _, st := range inventory.States() {
		mw.Gauge("stagehand_hosts", "Hosts in the inventory by state.", metrics.L("state", st.String()), float64(byState[st.String()]))
	}
	mw.Gauge("stagehand_hosts_stalled", "Hosts whose install attempt outran their profile's timeout.", nil, float64(stalled))
	s.installs.get().Write(mw, "stagehand_install_duration_seconds", "From install script to completion callback, observed as each completion is recorded since the process started.")
	s.writePhases(mw)
	s.requests.Write(mw, "stagehand_http_requests_total", "HTTP requests by route template and status code.")
	mw.Counter("stagehand_token_failures_total", "User-data and callback requests whose token was unknown, over or refused.", nil, float64(s.limiter.failed.Load()))
	mw.Counter("stagehand_token_ratelimited_total", "Token requests refused with 429 after too many failures from one address.", nil, float64(s.limiter.denied.Load()))
	for i, reason := range refusedReason {
		mw.Counter("stagehand_discovery_refused_total", "Unknown hosts not recorded under --unknown-hosts discover: a bound (total, per address) was reached.", metrics.L("reason", reason), float64(s.discovery.refused[i].Load()))
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics(mw)
	}
	// Process health, for leak checks after load: goroutines and open
	// descriptors must fall back once clients go away.
	mw.Gauge("stagehand_goroutines", "Goroutines in the server process.", nil, float64(runtime.NumGoroutine()))
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		mw.Gauge("stagehand_open_fds", "Open file descriptors of the server process.", nil, float64(len(ents)))
	}
}
