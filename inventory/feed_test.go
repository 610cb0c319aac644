package inventory

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// feed collects what Options.OnEvents publishes.
type feed struct {
	mu    sync.Mutex
	calls int
	byMAC map[string][]Event
}

func (f *feed) on(evs []StoredEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	for _, e := range evs {
		f.byMAC[e.MAC] = append(f.byMAC[e.MAC], e.Event)
	}
}

func (f *feed) snapshot() (int, map[string][]Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]Event{}
	for k, v := range f.byMAC {
		out[k] = append([]Event(nil), v...)
	}
	return f.calls, out
}

func openFeedStore(t *testing.T) (*Store, *feed) {
	t.Helper()
	f := &feed{byMAC: map[string][]Event{}}
	s, err := Open(t.TempDir(), Options{
		Log:         zerolog.New(zerolog.NewTestWriter(t)),
		Now:         (&fakeClock{t: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)}).now,
		LockTimeout: 200 * time.Millisecond,
		OnEvents:    f.on,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, f
}

// Every write path publishes exactly the events it committed, in order,
// and a refused write publishes nothing.
func TestOnEventsEveryWritePath(t *testing.T) {
	s, f := openFeedStore(t)
	mustProfile(t, s, "edge")
	const a, b, c, d = "52:54:00:00:10:01", "52:54:00:00:10:02", "52:54:00:00:10:03", "52:54:00:00:10:04"
	mustHost(t, s, Host{MAC: a, Profile: "edge", Serial: "S-A", OtherMACs: []string{"52:54:00:00:10:0a"}}) // created
	if _, err := s.Discover(b, "10.0.0.2", Facts{Serial: "S-A"}, 0); err != nil {                          // created, script, serial-match ×2
		t.Fatal(err)
	}
	if _, err := s.UpdateHost(b, func(h *Host) error { h.Profile = "edge"; return nil }); err != nil { // assign
		t.Fatal(err)
	}
	if _, err := s.Import(parse(t, "mac,profile\n"+c+",edge\n"+d+",edge\n")); err != nil { // imported
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddEvent("52:54:00:00:10:0a", "dhcp", "other NIC"))
	_, err := s.AddEvents([]HostEvent{{MAC: a, Kind: "tftp"}, {MAC: b, Kind: "tftp"}, {MAC: "02:00:00:00:00:01", Kind: "tftp"}})
	must(err)
	_, err = s.Seen(a, "10.0.0.1", Facts{Serial: "S-X"}) // script, serial-mismatch
	must(err)
	_, tokA, err := s.BeginInstall(a, "10.0.0.1")
	must(err)
	_, _, err = s.BeginInstall(a, "10.0.0.1") // again: same token
	must(err)
	_, tokB, err := s.BeginInstallSeen(b, "10.0.0.2", Facts{})
	must(err)
	_, _, err = s.FetchUserData(tokA, "10.0.0.66", BindToScriptIP, okRender) // userdata-refused, committed
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("wrong address: %v", err)
	}
	_, _, err = s.FetchUserData(tokA, "10.0.0.1", BindToScriptIP, okRender)
	must(err)
	_, _, err = s.Complete(tokA)
	must(err)
	_, _, err = s.Fail(tokB, "no disk")
	must(err)
	_, err = s.Reprovision(b)
	must(err)
	_, _, err = s.BeginInstall(c, "")
	must(err)
	must(s.DeleteHost(d))

	_, got := f.snapshot()
	for _, mac := range []string{a, b, c} {
		if want := mustEvents(t, s, mac); !reflect.DeepEqual(got[mac], want) {
			t.Errorf("%s: published %v, stored %v", mac, kinds(got[mac]), kinds(want))
		}
	}
	if len(got[d]) != 1 || got[d][0].Kind != "imported" {
		t.Errorf("deleted host: published %v", kinds(got[d]))
	}

	// Refused writes: nothing committed, nothing published.
	tokC := mustToken(t, s, c)
	disc := mustDiscovered(t, s)
	calls, before := f.snapshot()
	refused := map[string]error{}
	_, refused["create existing"] = s.CreateHost(Host{MAC: a, Profile: "edge"})
	_, refused["update invalid"] = s.UpdateHost(a, func(h *Host) error { h.Name = "-bad"; return nil })
	_, refused["update fn error"] = s.UpdateHost(a, func(h *Host) error { return ErrConflict })
	_, refused["import bad row"] = s.Import(parse(t, "mac,profile\n52:54:00:00:10:09,nosuch\n"))
	refused["event of a stranger"] = s.AddEvent("02:00:00:00:00:09", "dhcp", "")
	_, _, refused["script of an installed host"] = s.BeginInstall(a, "10.0.0.1")
	_, _, refused["unknown token"] = s.FetchUserData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "10.0.0.1", AnyIP, okRender)
	_, _, refused["render fails"] = s.FetchUserData(tokC, "10.0.0.3", AnyIP, func(Host, Profile) error { return ErrInvalid })
	_, _, refused["failed after done"] = s.Fail(tokA, "late")
	_, refused["reprovision a discovered host"] = s.Reprovision(disc)
	refused["delete a stranger"] = s.DeleteHost("02:00:00:00:00:09")
	refused["delete another NIC"] = s.DeleteHost("52:54:00:00:10:0a")
	for what, err := range refused {
		if err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	if n, after := f.snapshot(); n != calls || !reflect.DeepEqual(after, before) {
		t.Errorf("refused writes published %d calls", n-calls)
	}
}

// mustToken is the live token of mac's attempt (BeginInstall hands the
// same one out again).
func mustToken(t *testing.T, s *Store, mac string) string {
	t.Helper()
	_, tok, err := s.BeginInstall(mac, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mustDiscovered adds a discovered host and returns its MAC.
func mustDiscovered(t *testing.T, s *Store) string {
	t.Helper()
	const mac = "52:54:00:00:10:0f"
	if _, err := s.Discover(mac, "", Facts{}, 0); err != nil {
		t.Fatal(err)
	}
	return mac
}

// countingEngine counts Update calls and how often their functions ran.
type countingEngine struct {
	storage.Engine
	updates, runs atomic.Int64
}

func (c *countingEngine) Update(fn func(storage.Tx) error) error {
	c.updates.Add(1)
	return c.Engine.Update(func(tx storage.Tx) error {
		c.runs.Add(1)
		return fn(tx)
	})
}

// Installer callbacks with bad tokens, mixed among good ones under
// concurrency, never join a write: each good caller's transaction runs
// exactly once, and the refused callers cost no write at all.
func TestRefusalsDoNotRerunOthers(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const n = 32
	good := make([]string, n)
	var gone []string
	for i := range n {
		mac := "52:54:00:00:11:" + string("0123456789abcdef"[i/16]) + string("0123456789abcdef"[i%16])
		mustHost(t, s, Host{MAC: mac, Profile: "edge"})
		good[i] = mustToken(t, s, mac)
		if i%4 == 0 { // some attempts over: their tokens are gone
			if _, err := s.Reprovision(mac); err != nil {
				t.Fatal(err)
			}
			gone = append(gone, good[i])
			good[i] = mustToken(t, s, mac)
		}
	}
	ce := &countingEngine{Engine: s.eng}
	s.eng = ce
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			<-start
			_, changed, err := s.Complete(good[i])
			if err != nil || !changed {
				errs <- err
			}
		})
		wg.Go(func() {
			<-start
			if _, _, err := s.Complete("never-issued-" + good[i][:8]); !errors.Is(err, ErrNotFound) {
				errs <- err
			}
		})
		if i < len(gone) {
			wg.Go(func() {
				<-start
				if _, _, err := s.Fail(gone[i], "x"); !errors.Is(err, ErrGone) {
					errs <- err
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected answer: %v", err)
	}
	if u, r := ce.updates.Load(), ce.runs.Load(); u != n || r != n {
		t.Errorf("%d writes ran %d transaction functions for %d good callers: want %d and %d", u, r, n, n, n)
	}
}

// The feed publishes in commit order: one host's events, written by
// many writers at once, reach OnEvents in the order they are stored.
func TestOnEventsCommitOrder(t *testing.T) {
	s, f := openFeedStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:12:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	tok := mustToken(t, s, mac)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 12 {
				var err error
				switch (w + i) % 4 {
				case 0:
					err = s.AddEvent(mac, "dhcp", "")
				case 1:
					_, err = s.AddEvents([]HostEvent{{MAC: mac, Kind: "tftp"}, {MAC: mac, Kind: "http"}})
				case 2:
					_, _, err = s.BeginInstall(mac, "10.0.0.1")
				case 3:
					_, _, err = s.FetchUserData(tok, "10.0.0.1", BindToScriptIP, okRender)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	_, got := f.snapshot()
	stored := mustEvents(t, s, mac)
	if len(stored) >= MaxEventsPerHost {
		t.Fatalf("%d events: the cap would hide the order", len(stored))
	}
	// A repeated event is published again with its count: it takes
	// the place of the one it repeats, as in the store.
	var folded []Event
	for _, e := range got[mac] {
		i := len(folded) - 1
		for e.Count > 1 && i >= 0 && !(folded[i].Time.Equal(e.Time) && folded[i].repeats(&e)) {
			i--
		}
		if e.Count > 1 && i >= 0 {
			folded[i] = e
			continue
		}
		folded = append(folded, e)
	}
	if !reflect.DeepEqual(folded, stored) {
		t.Errorf("published %d events (%d once repeats are folded) in another order than the %d stored", len(got[mac]), len(folded), len(stored))
	}
}
