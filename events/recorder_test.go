package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

// openStore opens a real store in t.TempDir() with one host per MAC.
func openStore(t *testing.T, o inventory.Options, macs ...string) *inventory.Store {
	t.Helper()
	o.LockTimeout = 200 * time.Millisecond
	st, err := inventory.Open(filepath.Join(t.TempDir(), "data"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, m := range macs {
		if _, err := st.CreateHost(inventory.Host{MAC: m}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// gate is a Sink that holds every commit until released, counting the
// calls and the events it was given.
type gate struct {
	next    events.Sink
	release chan struct{}
	entered chan struct{} // one send per AddEvents call, before it waits

	mu      sync.Mutex
	batches []int
}

func newGate(next events.Sink) *gate {
	return &gate{next: next, release: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gate) AddEvents(evs []inventory.HostEvent) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.batches = append(g.batches, len(evs))
	g.mu.Unlock()
	return g.next.AddEvents(evs)
}

// details are the details of mac's events of kind, oldest first.
func details(t *testing.T, st *inventory.Store, mac, kind string) []string {
	t.Helper()
	ev, err := st.Events(mac)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ev {
		if e.Kind == kind {
			out = append(out, e.Detail)
		}
	}
	return out
}

func flush(t *testing.T, r *events.Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
)

// Record never waits for a commit: with the committer held inside the
// store, the queue fills, the rest are dropped and counted; once released,
// what was queued is committed in order, in batches, and the drops show
// in the metrics.
func TestRecorderDropsWhenFullAndNeverWaits(t *testing.T) {
	st := openStore(t, inventory.Options{}, mac1)
	g := newGate(st)
	r := events.NewRecorder(events.Config{Sink: g, Queue: 8, Batch: 4})

	r.Record(mac1, "k", "0") // the committer takes it and waits in the gate
	<-g.entered
	for i := 1; i <= 20; i++ { // returns although nothing can commit
		r.Record(mac1, "k", fmt.Sprint(i))
	}
	if st := r.Stats(); st.DroppedFull != 12 || st.Committed != 0 {
		t.Fatalf("while held: %+v; want 8 queued, 12 dropped, none committed", st)
	}
	close(g.release)
	flush(t, r)

	got := details(t, st, mac1, "k")
	if strings.Join(got, ",") != "0,1,2,3,4,5,6,7,8" {
		t.Fatalf("committed %v; want 0..8 in order", got)
	}
	g.mu.Lock()
	batches := fmt.Sprint(g.batches)
	g.mu.Unlock()
	if batches != "[1 4 4]" {
		t.Errorf("commits of %s events; want [1 4 4]: one commit per batch", batches)
	}
	if st := r.Stats(); st.Committed != 9 || st.DroppedFull != 12 {
		t.Errorf("after: %+v", st)
	}
	var b bytes.Buffer
	r.WriteMetrics(metrics.NewWriter(&b))
	for _, want := range []string{`stagehand_events_dropped_total{reason="queue_full"} 12`, "stagehand_events_recorded_total 9", "stagehand_events_queued 0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

// Events of MACs that are no host's cost nothing and are not counted as
// recorded; another NIC's events land on its host.
func TestRecorderStrangersAndOtherNICs(t *testing.T) {
	st := openStore(t, inventory.Options{}, mac1)
	nic := "52:54:00:00:00:f1"
	if _, err := st.UpdateHost(mac1, func(h *inventory.Host) error { h.OtherMACs = []string{nic}; return nil }); err != nil {
		t.Fatal(err)
	}
	r := events.NewRecorder(events.Config{Sink: st})
	r.Record("52:54:00:99:99:99", "dhcp", "stranger")
	r.Record("not a mac", "dhcp", "junk")
	r.Record(nic, "dhcp", "from the other NIC")
	flush(t, r)
	ev, _ := st.Events(mac1)
	if len(ev) == 0 || ev[len(ev)-1].Detail != "from the other NIC" {
		t.Fatalf("events of %s: %+v", mac1, ev)
	}
	if got := r.Stats().Committed; got != 1 {
		t.Errorf("Committed = %d, want 1", got)
	}
}

type failing struct{ calls int }

func (f *failing) AddEvents(evs []inventory.HostEvent) (int, error) {
	f.calls++
	return 0, errors.New("disk full")
}

// A failing store is logged once per interval, and its events counted.
func TestRecorderCommitErrorsLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	f := &failing{}
	r := events.NewRecorder(events.Config{Sink: f, Log: zerolog.New(&logs), ErrorInterval: time.Hour})
	for i := range 5 {
		r.Record(mac1, "k", fmt.Sprint(i))
		flush(t, r) // one commit each
	}
	if f.calls != 5 {
		t.Fatalf("%d commits, want 5", f.calls)
	}
	if n := strings.Count(logs.String(), "disk full"); n != 1 {
		t.Errorf("%d log lines for 5 failed commits, want 1:\n%s", n, logs.String())
	}
	if st := r.Stats(); st.Failed != 5 {
		t.Errorf("Failed = %d, want 5", st.Failed)
	}
}

// Close commits what is queued, then refuses (and counts) new events.
func TestRecorderCloseDrains(t *testing.T) {
	st := openStore(t, inventory.Options{}, mac1)
	g := newGate(st)
	r := events.NewRecorder(events.Config{Sink: g})
	for i := range 3 {
		r.Record(mac1, "k", fmt.Sprint(i))
	}
	<-g.entered
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := details(t, st, mac1, "k"); len(got) != 3 {
		t.Fatalf("%v committed by Close, want 3", got)
	}
	r.Record(mac1, "k", "late")
	if s := r.Stats(); s.DroppedClosed != 1 {
		t.Errorf("after Close: %+v", s)
	}

	// Close within a bound: a store that never returns does not hold it.
	g2 := newGate(st)
	r2 := events.NewRecorder(events.Config{Sink: g2})
	r2.Record(mac1, "k", "stuck")
	<-g2.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r2.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a stuck store: %v", err)
	}
	close(g2.release)
}

// Many goroutines recording at once: every event is committed exactly
// once (run with -race).
func TestRecorderConcurrent(t *testing.T) {
	st := openStore(t, inventory.Options{}, mac1, mac2)
	r := events.NewRecorder(events.Config{Sink: st, Batch: 16})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				r.Record([]string{mac1, mac2}[w%2], "k", fmt.Sprintf("%d-%d", w, i))
			}
		}()
	}
	wg.Wait()
	flush(t, r)
	e1, e2 := details(t, st, mac1, "k"), details(t, st, mac2, "k")
	if len(e1)+len(e2) != 160 || r.Stats().Committed != 160 {
		t.Fatalf("committed %d+%d (stats %+v), want 160", len(e1), len(e2), r.Stats())
	}
}
