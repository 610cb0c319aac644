package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// finishedHost installs (done) or fails a host with facts and returns it
// as stored; a user-data refusal is in its history.
func finishedHost(t *testing.T, s *Store, mac string, done bool) Host {
	t.Helper()
	mustHost(t, s, Host{MAC: mac, Name: "n-" + mac[len(mac)-2:], Serial: "SN-REAL", Profile: "edge"})
	_, tok, err := s.BeginInstallSeen(mac, "10.0.0.5", Facts{Serial: "SN-REAL", Product: "Edge 1000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.FetchUserData(tok, "10.0.0.66", BindToScriptIP, okRender); !errors.Is(err, ErrForbidden) {
		t.Fatalf("FetchUserData from another address: %v", err)
	}
	if _, _, err := s.FetchUserData(tok, "10.0.0.5", BindToScriptIP, okRender); err != nil {
		t.Fatal(err)
	}
	if done {
		_, _, err = s.Complete(tok)
	} else {
		_, _, err = s.Fail(tok, "disk not found")
	}
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Host(mac)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Stage 2 for a host whose install is over records one event and
// changes nothing else: not the reported facts, not last_ip.
func TestFinishedHostFactsStayPut(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	for i, done := range []bool{true, false} {
		mac := fmt.Sprintf("52:54:00:00:20:%02x", i)
		before := finishedHost(t, s, mac, done)
		evs := mustEvents(t, s, mac)
		h, err := s.Seen(mac, "10.9.9.9", Facts{Serial: "=HYPERLINK(\"x\")", Product: "Forged", BuildArch: "i386", Platform: "pcbios"})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := s.Host(mac)
		if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(h, before) {
			t.Errorf("%s host changed by stage 2:\nbefore %+v\nafter  %+v", before.State, before, after)
		}
		got := mustEvents(t, s, mac)
		if len(got) != len(evs)+1 {
			t.Fatalf("%s host: %d events after stage 2, want %d (one more)", before.State, len(got), len(evs)+1)
		}
		if e := got[len(got)-1]; e.Kind != "script" || !strings.Contains(e.Detail, "10.9.9.9") || !strings.Contains(e.Detail, "facts kept") {
			t.Errorf("%s host: the event = %+v", before.State, e)
		}
	}
}

// A flood of routine events (stage 2 of an installed host, DHCP) evicts
// routine events only: the host's audit trail stays whole.
func TestAuditEventsOutliveRoutine(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:21:01"
	finishedHost(t, s, mac, true)
	audit := kinds(mustEvents(t, s, mac))
	for b := range 20 {
		batch := make([]HostEvent, 500)
		for i := range batch {
			batch[i] = HostEvent{MAC: mac, Kind: []string{"script", "dhcp", "localboot"}[i%3], Detail: fmt.Sprintf("flood %d-%d", b, i)}
		}
		if _, err := s.AddEvents(batch); err != nil {
			t.Fatal(err)
		}
	}
	ev := mustEvents(t, s, mac)
	var kept []string
	routine := 0
	for _, e := range ev {
		if classOf(e.Kind) == classAudit {
			kept = append(kept, e.Kind)
		} else {
			routine++
		}
	}
	for _, want := range []string{"created", "booting", "userdata-refused", "userdata", "installed"} {
		if !slices.Contains(kept, want) {
			t.Errorf("after 10 000 routine events the audit events are %v: %s is gone", kept, want)
		}
	}
	if len(kept) != len(slices.DeleteFunc(audit, func(k string) bool { return classOf(k) != classAudit })) || routine != MaxEventsPerHost {
		t.Errorf("%d audit and %d routine events kept, want %d and %d", len(kept), routine, len(audit)-1, MaxEventsPerHost)
	}
	if last := ev[len(ev)-1]; last.Detail != "flood 19-499" {
		t.Errorf("newest event = %+v, want the last of the flood", last)
	}
	// The audit class has its own bound.
	for i := range MaxEventsPerHost + 5 {
		if err := s.AddEvent(mac, "stage2-refused", fmt.Sprintf("from 10.1.%d.%d", i/250, i%250)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, e := range mustEvents(t, s, mac) {
		if classOf(e.Kind) == classAudit {
			n++
		}
	}
	if n != MaxEventsPerHost {
		t.Errorf("%d audit events kept, want the bound %d", n, MaxEventsPerHost)
	}
}

// The same event again is counted on the newest of its class, not
// stored twice.
func TestRepeatedEventsCollapse(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:22:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	for range 110 {
		if err := s.AddEvent(mac, "script", "stage 2 requested, ip 10.0.0.9"); err != nil {
			t.Fatal(err)
		}
	}
	ev := mustEvents(t, s, mac)
	if len(ev) != 2 || ev[1].Count != 110 || !ev[1].Last.After(ev[1].Time) {
		t.Fatalf("after 110 identical requests: %+v; want created and one event counted 110", ev)
	}
	// An audit event between them does not break the routine run, and a
	// different detail is a new event.
	if err := s.AddEvent(mac, "serial-match", "x"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"stage 2 requested, ip 10.0.0.9", "stage 2 requested, ip 10.0.0.10"} {
		if err := s.AddEvent(mac, "script", d); err != nil {
			t.Fatal(err)
		}
	}
	ev = mustEvents(t, s, mac)
	if got := kinds(ev); !reflect.DeepEqual(got, []string{"created", "script", "serial-match", "script"}) || ev[1].Count != 111 || ev[3].Count != 0 {
		t.Fatalf("events %v, counts %d and %d; want the run counted 111 and a new event", got, ev[1].Count, ev[3].Count)
	}
}

// Events stored before events had classes (keys ending at the sequence
// number) are classed by their kind and ordered with the new ones.
func TestUnclassedEventKeys(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:23:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	err := s.eng.Update(func(tx storage.Tx) error {
		deleteSeq(tx, colEvents, mac, -1)
		for i, kind := range append([]string{"created"}, slices.Repeat([]string{"dhcp"}, MaxEventsPerHost)...) {
			raw, _ := jsonOf(Event{Kind: kind, Detail: fmt.Sprint("old ", i)})
			tx.Put(colEvents, string(binary.BigEndian.AppendUint64([]byte(seqPrefix(mac)), uint64(i+1))), raw)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(mac, "tftp", "new"); err != nil {
		t.Fatal(err)
	}
	ev := mustEvents(t, s, mac)
	if len(ev) != MaxEventsPerHost+1 || ev[0].Kind != "created" || ev[1].Detail != "old 2" || ev[len(ev)-1].Detail != "new" {
		t.Fatalf("%d events, first %+v, second %+v, last %+v; want created kept, the oldest dhcp evicted, the new one last", len(ev), ev[0], ev[1], ev[len(ev)-1])
	}
}

// Discovery stops at its bound: nothing is written past it.
func TestDiscoverLimit(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:24:ff", Profile: "edge"})
	for i := range 3 {
		if _, err := s.Discover(fmt.Sprintf("52:54:00:00:24:%02x", i), "10.0.0.1", Facts{}, 3); err != nil {
			t.Fatal(err)
		}
	}
	before := mustHosts(t, s)
	if _, err := s.Discover("52:54:00:00:24:10", "10.0.0.1", Facts{Serial: "S"}, 3); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth discovery with a bound of 3: %v, want ErrLimit", err)
	}
	unchanged(t, s, before)
	// A host already known is returned as before, at the bound too.
	if h, err := s.Discover("52:54:00:00:24:00", "10.0.0.1", Facts{}, 3); err != nil || h.State != StateDiscovered {
		t.Fatalf("known host at the bound: %+v, %v", h, err)
	}
	// Assigned hosts are not discovered ones: room again.
	if _, err := s.UpdateHost("52:54:00:00:24:00", func(h *Host) error { h.Profile = "edge"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Discover("52:54:00:00:24:10", "10.0.0.1", Facts{}, 3); err != nil {
		t.Fatal(err)
	}
}

// host add and a manifest take over a MAC that is only discovered; a
// discovered host an operator has touched still collides.
func TestTakeover(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const a, b, c = "52:54:00:00:25:01", "52:54:00:00:25:02", "52:54:00:00:25:03"
	for _, mac := range []string{a, b, c} {
		if _, err := s.Discover(mac, "10.0.0.66", Facts{Serial: "SQUAT", Product: "Laptop"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.CreateHost(Host{MAC: a, Name: "real", Profile: "edge"})
	if err != nil {
		t.Fatalf("host add over a discovered MAC: %v", err)
	}
	if h.State != StateReady || h.LastIP != "" || h.Facts != (Facts{}) {
		t.Errorf("taken-over host = %+v; want ready with nothing the squatter reported", h)
	}
	if _, err := s.Import(parse(t, "mac,name,profile\n"+b+",real2,edge\n")); err != nil {
		t.Fatalf("import over a discovered MAC: %v", err)
	}
	for _, mac := range []string{a, b} {
		h, _ := s.Host(mac)
		ev := mustEvents(t, s, mac)
		last := ev[len(ev)-1]
		if h.State != StateReady || h.Facts.Serial != "" || last.Kind != "takeover" || !strings.Contains(last.Detail, "SQUAT") || !strings.Contains(last.Detail, "10.0.0.66") {
			t.Errorf("%s: %+v, last event %+v; want ready, a takeover naming what the record reported", mac, h, last)
		}
	}
	if _, err := s.UpdateHost(c, func(h *Host) error { h.Name = "kept"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateHost(Host{MAC: c, Profile: "edge"}); !errors.Is(err, ErrExists) {
		t.Fatalf("host add over a named discovered host: %v, want ErrExists", err)
	}
	// A host the operator imported with its MAC alone is discovered too,
	// but it is the operator's: importing it again updates it, and its
	// facts stay (FuzzParseCSV found the takeover here).
	const d = "52:54:00:00:25:04"
	for i, want := range []ImportResult{{Created: 1}, {Updated: 1}} {
		res, err := s.Import(parse(t, "mac\n"+d+"\n"))
		if err != nil || res != want {
			t.Fatalf("import %d of a MAC-only row: %+v, %v; want %+v", i+1, res, err, want)
		}
		if i == 0 {
			if _, err := s.Seen(d, "10.0.0.7", Facts{Serial: "REAL"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h, _ := s.Host(d); h.Facts.Serial != "REAL" || countKinds(mustEvents(t, s, d), "takeover") != 0 {
		t.Errorf("operator's MAC-only host after a second import: %+v, events %+v", h, mustEvents(t, s, d))
	}
}
