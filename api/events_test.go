package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
)

// eventStream is one open GET /api/v1/events response, read line by
// line in the background.
type eventStream struct {
	t     *testing.T
	res   *http.Response
	lines chan string
}

func (e *env) openStream(query string) *eventStream {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+"/api/v1/events?"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		e.t.Fatalf("stream %s: %d %s %s", query, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	s := &eventStream{t: e.t, res: res, lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	e.t.Cleanup(func() { res.Body.Close() })
	return s
}

// next returns the next event line; heartbeats (blank lines) are
// returned as "" only when wantBlank.
func (s *eventStream) next(wantBlank bool) (inventory.StoredEvent, bool) {
	s.t.Helper()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return inventory.StoredEvent{}, false
			}
			if l == "" {
				if wantBlank {
					return inventory.StoredEvent{}, true
				}
				continue
			}
			var e inventory.StoredEvent
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				s.t.Fatalf("stream line %q: %v", l, err)
			}
			return e, true
		case <-time.After(10 * time.Second):
			s.t.Fatal("no event on the stream for 10 s")
		}
	}
}

// until reads events up to and including one of kind, skipping artifact
// downloads (recorded apart from the ordered steps); it returns the kinds.
func (s *eventStream) until(kind, mac string) []string {
	s.t.Helper()
	var kinds []string
	for {
		e, ok := s.next(false)
		if !ok {
			s.t.Fatalf("stream ended after %v, before %s", kinds, kind)
		}
		if e.MAC != mac {
			s.t.Fatalf("event %+v on the stream is not on host %s", e, mac)
		}
		if e.Kind != "artifact" {
			kinds = append(kinds, e.Kind)
		}
		if e.Kind == kind {
			return kinds
		}
	}
}

// A subscriber sees one boot's events in order, live, as the machine
// endpoints commit them: through the host's other NIC's MAC, and on the
// all-hosts stream.
func TestEventStreamFollowsABoot(t *testing.T) {
	e := newEnv(t, nil)
	nic := "52:54:00:aa:00:f1"
	e.addHost(inventory.Host{MAC: mac1, Name: "rack1-node01", Profile: "edge", OtherMACs: []string{nic}})

	one := e.openStream("mac=" + strings.ToUpper(nic) + "&follow=1")
	all := e.openStream("follow=1")
	if got := one.until("created", mac1); len(got) != 1 {
		t.Fatalf("the host's stream starts with %v, want its stored history [created]", got)
	}

	_, token := e.stage2(query1)
	e.get("/artifacts/edge/kernel")
	e.get("/artifacts/edge/initrd")
	if r := e.get("/userdata/" + token); r.status != http.StatusOK {
		t.Fatalf("user-data: %d %s", r.status, r.body)
	}
	decodeCallback(t, e.post("/callback/"+token+"/done", ""))

	want := []string{"script", "booting", "userdata", "installed"}
	if got := one.until("installed", mac1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("host stream: %v, want %v", got, want)
	}
	if got := all.until("installed", mac1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("all-hosts stream: %v, want %v", got, want)
	}
	// The stored history agrees.
	var stored []string
	for _, k := range eventKinds(t, e.store, mac1) {
		if k != "artifact" {
			stored = append(stored, k)
		}
	}
	if strings.Join(stored, " ") != "created "+strings.Join(want, " ") {
		t.Errorf("stored: %v", stored)
	}
}

// Without follow: the host's stored events, oldest first, then the end.
func TestEventStreamHistory(t *testing.T) {
	e := newEnv(t, nil)
	nic := "52:54:00:aa:00:f1"
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge", OtherMACs: []string{nic}})
	e.stage2(query1)
	e.flush()
	stored, err := e.store.Events(mac1)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"mac=" + mac1, "mac=" + nic, "mac=52-54-00-AA-00-01&follow=0"} {
		r := e.op(http.MethodGet, "/events?"+q, "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s: %d %v %s", q, r.status, r.header, r.body)
		}
		lines := strings.Split(strings.TrimSuffix(r.text(), "\n"), "\n")
		if len(lines) != len(stored) {
			t.Fatalf("%s: %d lines for %d stored events:\n%s", q, len(lines), len(stored), r.body)
		}
		for i, l := range lines {
			var got inventory.StoredEvent
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("%s line %d %q: %v", q, i, l, err)
			}
			if got.MAC != mac1 || got.Kind != stored[i].Kind || !got.Time.Equal(stored[i].Time) || got.Attempt != stored[i].Attempt {
				t.Errorf("%s line %d: %+v, want %+v", q, i, got, stored[i])
			}
		}
	}
}

func TestEventStreamRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	msg := wantError(t, e.op(http.MethodGet, "/events", ""), http.StatusBadRequest, "validation")
	if !strings.Contains(msg, "mac is required without follow") {
		t.Errorf("no mac: %q", msg)
	}
	wantError(t, e.op(http.MethodGet, "/events?mac=52:54:00:99:99:99", ""), http.StatusNotFound, "not_found")
	wantError(t, e.op(http.MethodGet, "/events?mac=52:54:00:99:99:99&follow=1", ""), http.StatusNotFound, "not_found")
	if msg := wantError(t, e.op(http.MethodGet, "/events?mac=nope", ""), http.StatusBadRequest, "validation"); !strings.Contains(msg, `mac "nope"`) {
		t.Errorf("bad mac: %q", msg)
	}
	wantError(t, e.op(http.MethodGet, "/events?mac="+mac1+"&follow=yes", ""), http.StatusBadRequest, "validation")
	wantError(t, e.op(http.MethodGet, "/events?mac="+mac1+"&mac="+mac1, ""), http.StatusBadRequest, "validation")
	wantError(t, e.get("/api/v1/events?mac="+mac1), http.StatusUnauthorized, "unauthorized")
	wantError(t, e.op(http.MethodPost, "/events?mac="+mac1, ""), http.StatusMethodNotAllowed, "method_not_allowed")

	// A server without a live feed says so rather than hang.
	nofeed := httptest.NewServer(api.New(api.Config{Store: e.store, Token: testToken}))
	defer nofeed.Close()
	req, _ := http.NewRequest(http.MethodGet, nofeed.URL+"/api/v1/events?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := nofeed.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("follow without a feed: %d, want 503", res.StatusCode)
	}
}

// A quiet followed stream gets bare newlines, and ends when the feed
// closes (as at server shutdown).
func TestEventStreamHeartbeatAndEnd(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Heartbeat = 20 * time.Millisecond })
	s := e.openStream("follow=1")
	if ev, ok := s.next(true); !ok || ev.Kind != "" {
		t.Fatalf("want a heartbeat, got %+v, %v", ev, ok)
	}
	e.feed.Close()
	for {
		ev, ok := s.next(true)
		if !ok {
			break
		}
		if ev.Kind != "" {
			t.Fatalf("event %+v after the feed closed", ev)
		}
	}
}

// Streams opened while a host's events are being committed get every
// event exactly once, in order: history up to the moment of subscribing,
// then live, with the overlap sent once.
func TestEventStreamNoGapNoDuplicate(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	const n = 150 // below the store's 200 events per host: no trimming
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			if err := e.store.AddEvent(mac1, "tick", fmt.Sprint(i)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	var streams []*eventStream
	for range 6 {
		streams = append(streams, e.openStream("mac="+mac1+"&follow=1"))
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	for si, s := range streams {
		var got []string
		for len(got) == 0 || got[len(got)-1] != fmt.Sprint(n-1) {
			ev, ok := s.next(false)
			if !ok {
				t.Fatalf("stream %d ended after %v", si, got)
			}
			if ev.Kind == "tick" {
				got = append(got, ev.Detail)
			}
		}
		for i, d := range got {
			if d != fmt.Sprint(i) {
				t.Fatalf("stream %d: event %d is %s; the stream is %v", si, i, d, got)
			}
		}
	}
}

// An event committed between the stream's subscription and its history
// read is in both; it is sent once. The feed here is driven by hand, so
// the overlap is certain.
func TestEventStreamOverlapSentOnce(t *testing.T) {
	feed := events.NewHub()
	e := newEnv(t, func(c *api.Config) { c.Feed = feed })
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	for i := range 3 {
		if err := e.store.AddEvent(mac1, "tick", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := e.store.Events(mac1)
	if err != nil {
		t.Fatal(err)
	}
	s := e.openStream("mac=" + mac1 + "&follow=1")
	// The last stored event arrives live too (its commit hook ran after
	// the history was read), then a new one.
	last := stored[len(stored)-1]
	feed.Publish([]inventory.StoredEvent{{MAC: mac1, Event: last}})
	newer := inventory.Event{Time: last.Time.Add(time.Millisecond), Kind: "tick", Detail: "3"}
	feed.Publish([]inventory.StoredEvent{{MAC: mac1, Event: newer}})
	var got []string
	for len(got) < 4 {
		ev, ok := s.next(false)
		if !ok {
			t.Fatalf("stream ended after %v", got)
		}
		if ev.Kind == "tick" {
			got = append(got, ev.Detail)
		}
	}
	if strings.Join(got, ",") != "0,1,2,3" {
		t.Fatalf("stream %v, want 0,1,2,3: the overlap once", got)
	}
}
