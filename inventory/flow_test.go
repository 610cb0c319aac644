package inventory

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func okRender(Host, Profile) error { return nil }

func TestBootFlow(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:00:01"
	mustHost(t, s, Host{MAC: mac, Name: "node1", Profile: "edge"})

	// First stage 2: a new attempt and its token.
	h, tok1, err := s.BeginInstall("52-54-00-00-00-01", "10.0.0.5")
	if err != nil {
		t.Fatalf("BeginInstall: %v", err)
	}
	if h.State != StateBooting || h.Attempt != 1 || tok1 == "" || h.TokenHash != hashToken(tok1) || h.FirstBootAt.IsZero() {
		t.Fatalf("after BeginInstall: %+v", h)
	}
	if strings.Contains(h.TokenHash, tok1) {
		t.Fatal("the token itself is stored")
	}
	firstBoot := h.FirstBootAt

	// iPXE retried: same attempt, same token.
	h, tok2, err := s.BeginInstall(mac, "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if h.State != StateBooting || h.Attempt != 1 || tok2 != tok1 {
		t.Fatalf("second BeginInstall: %+v, token rotated %v", h, tok2 != tok1)
	}

	// The installer fetches its user-data, twice (it retries).
	var rendered []string
	render := func(h Host, p Profile) error {
		rendered = append(rendered, h.MAC+"/"+p.Name+"/"+h.State.String())
		return nil
	}
	h, p, err := s.FetchUserData(tok2, "10.0.0.5", AnyIP, render)
	if err != nil {
		t.Fatalf("FetchUserData: %v", err)
	}
	if h.State != StateInstalling || h.LastIP != "10.0.0.5" || p.Name != "edge" {
		t.Fatalf("after FetchUserData: %+v / %s", h, p.Name)
	}
	if h, _, err = s.FetchUserData(tok2, "10.0.0.5", AnyIP, render); err != nil || h.State != StateInstalling {
		t.Fatalf("repeated FetchUserData: %+v, %v", h, err)
	}
	if want := []string{mac + "/edge/booting", mac + "/edge/installing"}; !reflect.DeepEqual(rendered, want) {
		t.Fatalf("render saw %v, want %v", rendered, want)
	}

	// Completion, then the same callback again.
	h, changed, err := s.Complete(tok2)
	if err != nil || !changed || h.State != StateInstalled || h.InstalledAt.IsZero() {
		t.Fatalf("Complete = %+v, %v, %v", h, changed, err)
	}
	nEvents := len(mustEvents(t, s, mac))
	h, changed, err = s.Complete(tok2)
	if err != nil || changed || h.State != StateInstalled {
		t.Fatalf("repeated Complete = %s, changed %v, %v; want installed, false, nil", h.State, changed, err)
	}
	if n := len(mustEvents(t, s, mac)); n != nEvents {
		t.Fatalf("repeated Complete added events: %d → %d", nEvents, n)
	}

	// The attempt is over: user-data is gone, a failure report is refused.
	if _, _, err := s.FetchUserData(tok2, "10.0.0.5", AnyIP, okRender); !errors.Is(err, ErrGone) {
		t.Fatalf("user-data after completion: err = %v, want ErrGone", err)
	}
	if _, _, err := s.Fail(tok2, "late"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Fail after completion: err = %v, want ErrConflict", err)
	}
	// An installed host never installs again on its own.
	if _, _, err := s.BeginInstall(mac, "10.0.0.5"); !errors.Is(err, ErrConflict) {
		t.Fatalf("BeginInstall on installed host: err = %v, want ErrConflict", err)
	}

	wantKinds := []string{"created", "booting", "booting", "userdata", "userdata", "installed"}
	ev := mustEvents(t, s, mac)
	if got := kinds(ev); !reflect.DeepEqual(got, wantKinds) {
		t.Fatalf("events = %v, want %v", got, wantKinds)
	}
	for _, e := range ev[1:] {
		if e.Attempt != 1 {
			t.Errorf("event %+v: attempt %d, want 1", e, e.Attempt)
		}
	}

	// Reprovision: the token dies, the next boot is attempt 2.
	h, err = s.Reprovision(mac)
	if err != nil || h.State != StateReady || h.TokenHash != "" {
		t.Fatalf("Reprovision = %+v, %v", h, err)
	}
	if _, _, err := s.Complete(tok2); !errors.Is(err, ErrGone) {
		t.Fatalf("token after reprovision: err = %v, want ErrGone", err)
	}
	h, tok3, err := s.BeginInstall(mac, "10.0.0.5")
	if err != nil || h.Attempt != 2 || h.State != StateBooting || !h.InstalledAt.IsZero() || !h.FirstBootAt.Equal(firstBoot) {
		t.Fatalf("BeginInstall after reprovision = %+v, %v", h, err)
	}

	// This attempt fails, with a message far over the bound.
	long := strings.Repeat("disk /dev/sda not found; ", 400)
	h, changed, err = s.Fail(tok3, long)
	if err != nil || !changed || h.State != StateFailed {
		t.Fatalf("Fail = %s, %v, %v", h.State, changed, err)
	}
	if len(h.FailedMsg) != MaxFailMessage || !strings.HasPrefix(long, h.FailedMsg) {
		t.Fatalf("FailedMsg is %d bytes, want the first %d", len(h.FailedMsg), MaxFailMessage)
	}
	stored, _ := s.Host(mac)
	if stored.FailedMsg != h.FailedMsg {
		t.Fatal("stored FailedMsg differs from the returned one")
	}
	ev = mustEvents(t, s, mac)
	if last := ev[len(ev)-1]; last.Kind != "failed" || last.Attempt != 2 || len(last.Detail) > MaxFailMessage {
		t.Fatalf("failed event = kind %s attempt %d, %d bytes", last.Kind, last.Attempt, len(last.Detail))
	}
	if _, changed, err := s.Fail(tok3, "again"); err != nil || changed {
		t.Fatalf("repeated Fail: changed %v, %v", changed, err)
	}
	if _, _, err := s.FetchUserData(tok3, "", AnyIP, okRender); !errors.Is(err, ErrGone) {
		t.Fatalf("user-data after failure: err = %v, want ErrGone", err)
	}

	// A failed host can be reprovisioned too, and a new attempt clears the message.
	if _, err := s.Reprovision(mac); err != nil {
		t.Fatal(err)
	}
	h, _, err = s.BeginInstall(mac, "10.0.0.5")
	if err != nil || h.Attempt != 3 || h.FailedMsg != "" {
		t.Fatalf("attempt 3 = %+v, %v", h, err)
	}
}

func TestFailMessageStaysValidUTF8(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:00:01", Profile: "edge"})
	_, tok, err := s.BeginInstall("52:54:00:00:00:01", "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	// 3-byte runes: the cut at MaxFailMessage lands mid-rune.
	msg := "x" + strings.Repeat("€", MaxFailMessage) + "\xff"
	h, _, err := s.Fail(tok, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.FailedMsg) > MaxFailMessage || !utf8.ValidString(h.FailedMsg) {
		t.Fatalf("FailedMsg: %d bytes, valid UTF-8 %v", len(h.FailedMsg), utf8.ValidString(h.FailedMsg))
	}
}

func TestRenderFailureLeavesHostUnchanged(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:00:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	_, tok, err := s.BeginInstall(mac, "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	before := mustHosts(t, s)
	nEvents := len(mustEvents(t, s, mac))

	bad := errors.New("stylus.site.paletteEndpoint: required")
	if _, _, err := s.FetchUserData(tok, "10.9.9.9", AnyIP, func(Host, Profile) error { return bad }); !errors.Is(err, bad) {
		t.Fatalf("FetchUserData err = %v, want the render error", err)
	}
	unchanged(t, s, before)
	if n := len(mustEvents(t, s, mac)); n != nEvents {
		t.Fatalf("a failed render added events: %d → %d", nEvents, n)
	}
	// The token still works once the configuration is fixed.
	if h, _, err := s.FetchUserData(tok, "10.9.9.9", AnyIP, okRender); err != nil || h.State != StateInstalling {
		t.Fatalf("FetchUserData after the fix: %v, %v", h.State, err)
	}
}

func TestTokenLookupRejects(t *testing.T) {
	s := openTestStore(t)
	for _, tok := range []string{"", "nope", strings.Repeat("a", 129), strings.Repeat("a", 100000)} {
		if _, _, err := s.FetchUserData(tok, "", AnyIP, okRender); !errors.Is(err, ErrNotFound) {
			t.Errorf("FetchUserData(%d bytes) err = %v, want ErrNotFound", len(tok), err)
		}
		if _, _, err := s.Complete(tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("Complete(%d bytes) err = %v", len(tok), err)
		}
		if _, _, err := s.Fail(tok, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Fail(%d bytes) err = %v", len(tok), err)
		}
	}
}

func TestReprovisionRules(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:00:01"}) // discovered
	if _, err := s.Reprovision("52:54:00:00:00:01"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Reprovision(discovered) err = %v, want ErrConflict", err)
	}
	if _, _, err := s.BeginInstall("52:54:00:00:00:01", "10.0.0.5"); !errors.Is(err, ErrConflict) {
		t.Fatalf("BeginInstall(discovered) err = %v, want ErrConflict", err)
	}
	if _, err := s.Reprovision("52:54:00:00:00:99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reprovision(unknown) err = %v", err)
	}

	// A stalled attempt (booting) can be restarted by the operator.
	mustHost(t, s, Host{MAC: "52:54:00:00:00:02", Profile: "edge"})
	_, tok, err := s.BeginInstall("52:54:00:00:00:02", "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Reprovision("52:54:00:00:00:02")
	if err != nil || h.State != StateReady || h.Attempt != 1 {
		t.Fatalf("Reprovision(booting) = %+v, %v", h, err)
	}
	if _, _, err := s.FetchUserData(tok, "", AnyIP, okRender); !errors.Is(err, ErrGone) {
		t.Fatalf("stalled attempt's token after reprovision: %v", err)
	}
	ev := mustEvents(t, s, "52:54:00:00:00:02")
	if last := ev[len(ev)-1]; last.Kind != "reprovision" || last.Detail != "from booting" {
		t.Fatalf("last event = %+v", last)
	}
}

func TestSeen(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:00:01"
	mustHost(t, s, Host{MAC: mac, Serial: "ABC123", Profile: "edge"})

	// Same serial, other case: no mismatch.
	h, err := s.Seen(mac, "10.0.0.7", Facts{Serial: "abc123", Product: "Edge 1000", BuildArch: "x86_64", Platform: "efi"})
	if err != nil {
		t.Fatal(err)
	}
	if h.LastIP != "10.0.0.7" || h.LastArch != "x86_64-efi" || h.Facts.Product != "Edge 1000" {
		t.Fatalf("after Seen: %+v", h)
	}
	if k := kinds(mustEvents(t, s, mac)); !reflect.DeepEqual(k, []string{"created", "script"}) {
		t.Fatalf("events = %v", k)
	}

	// A swapped chassis.
	if _, err := s.Seen(mac, "10.0.0.7", Facts{Serial: "XYZ999", BuildArch: "i386", Platform: "pcbios"}); err != nil {
		t.Fatal(err)
	}
	ev := mustEvents(t, s, mac)
	last := ev[len(ev)-1]
	if last.Kind != "serial-mismatch" || !strings.Contains(last.Detail, `"ABC123"`) || !strings.Contains(last.Detail, `"XYZ999"`) {
		t.Fatalf("last event = %+v, want a serial-mismatch naming both serials", last)
	}
	// The manifest serial is kept; the reported one lands in Facts.
	h, _ = s.Host(mac)
	if h.Serial != "ABC123" || h.Facts.Serial != "XYZ999" || h.LastArch != "i386-pcbios" {
		t.Fatalf("host = %+v", h)
	}

	if _, err := s.Seen("52:54:00:00:00:99", "10.0.0.8", Facts{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Seen(unknown) err = %v", err)
	}
}

func TestDiscover(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	f := Facts{UUID: "8a3c0e2e-0000-4000-8000-000000000001", Serial: "SN-9", Manufacturer: "QEMU", Product: "Standard PC"}
	h, err := s.Discover("52-54-00-00-00-09", "10.0.0.9", f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.MAC != "52:54:00:00:00:09" || h.State != StateDiscovered || h.Facts != f || h.LastIP != "10.0.0.9" || h.Profile != "" {
		t.Fatalf("discovered host = %+v", h)
	}
	stored, err := s.Host(h.MAC)
	if err != nil || stored.Facts != f {
		t.Fatalf("stored = %+v, %v", stored, err)
	}

	// Discovering a known host changes nothing.
	mustHost(t, s, Host{MAC: "52:54:00:00:00:01", Profile: "edge", Name: "known"})
	before := mustHosts(t, s)
	h, err = s.Discover("52:54:00:00:00:01", "10.0.0.10", Facts{Serial: "other"}, 0)
	if err != nil || h.State != StateReady || h.Name != "known" {
		t.Fatalf("Discover(known) = %+v, %v", h, err)
	}
	unchanged(t, s, before)

	if _, err := s.Discover("not-a-mac", "10.0.0.1", Facts{}, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Discover(bad mac) err = %v", err)
	}
}

// A discovered machine reporting a manifest host's serial (booting from a
// NIC the manifest does not list) is pointed out on both records, once;
// nothing else changes.
func TestDiscoverSerialMatch(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "52:54:00:00:00:01", Profile: "edge", Name: "rack1-n1", Serial: "SN-A1"})
	mustHost(t, s, Host{MAC: "52:54:00:00:00:02", Profile: "edge", Name: "rack1-n2", Serial: "SN-A2"})
	kinds := func(mac string) []Event {
		t.Helper()
		evs, err := s.Events(mac)
		if err != nil {
			t.Fatal(err)
		}
		var out []Event
		for _, e := range evs {
			if e.Kind == "serial-match" {
				out = append(out, e)
			}
		}
		return out
	}

	// The second NIC of rack1-n1 boots; the serial's case differs.
	h, err := s.Discover("52:54:00:00:00:a1", "10.0.0.21", Facts{Serial: "sn-a1"}, 0)
	if err != nil || h.State != StateDiscovered {
		t.Fatalf("Discover = %+v, %v", h, err)
	}
	if ev := kinds("52:54:00:00:00:a1"); len(ev) != 1 || !strings.Contains(ev[0].Detail, "52:54:00:00:00:01 (rack1-n1)") {
		t.Fatalf("events on the discovered NIC: %+v", ev)
	}
	if ev := kinds("52:54:00:00:00:01"); len(ev) != 1 || !strings.Contains(ev[0].Detail, `"SN-A1"`) {
		t.Fatalf("events on the manifest host: %+v", ev)
	}
	if ev := kinds("52:54:00:00:00:02"); len(ev) != 0 {
		t.Fatalf("events on an unrelated host: %+v", ev)
	}
	if m, _ := s.Host("52:54:00:00:00:01"); m.State != StateReady || m.Attempt != 0 {
		t.Fatalf("the manifest host changed: %+v", m)
	}

	// Its next boots (stage 2 again while it waits) add nothing.
	if _, err := s.Discover("52:54:00:00:00:a1", "10.0.0.21", Facts{Serial: "sn-a1"}, 0); err != nil {
		t.Fatal(err)
	}
	if n1, n2 := len(kinds("52:54:00:00:00:a1")), len(kinds("52:54:00:00:00:01")); n1 != 1 || n2 != 1 {
		t.Fatalf("after a second discovery: %d and %d serial-match events, want 1 and 1", n1, n2)
	}

	// Many MACs reporting the serial: one event on the manifest host,
	// counted; each discovered record has its own.
	for i := range 30 {
		if _, err := s.Discover(fmt.Sprintf("52:54:00:00:01:%02x", i), "10.0.0.22", Facts{Serial: "SN-A1"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if ev := kinds("52:54:00:00:00:01"); len(ev) != 1 || ev[0].Count != 31 {
		t.Fatalf("after 30 more MACs report its serial, the manifest host's serial-match events: %+v; want one, count 31", ev)
	}
	if ev := kinds("52:54:00:00:01:1d"); len(ev) != 1 || !strings.Contains(ev[0].Detail, "rack1-n1") {
		t.Fatalf("events on the last discovered MAC: %+v", ev)
	}

	// No serial, or one no manifest lists: no event.
	for i, serial := range []string{"", "  ", "SN-ZZ"} {
		mac := fmt.Sprintf("52:54:00:00:00:b%d", i)
		if _, err := s.Discover(mac, "10.0.0.30", Facts{Serial: serial}, 0); err != nil {
			t.Fatal(err)
		}
		if ev := kinds(mac); len(ev) != 0 {
			t.Fatalf("serial %q: %+v", serial, ev)
		}
	}
}
