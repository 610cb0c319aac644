package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// raw is client text as a store older than the sanitiser may hold it.
const raw = "\x1b]0;pwned\x07\x1b[2J\u009b2J\u202eevil\xff\nfake line"

// terminalSafe fails unless out is valid UTF-8 free of C0 (but newline),
// DEL, C1 and bidi controls.
func terminalSafe(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s: not valid UTF-8:\n%q", what, out)
	}
	if i := strings.IndexFunc(out, func(r rune) bool {
		return (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
	}); i >= 0 {
		t.Errorf("%s: raw control %U at %d:\n%q", what, []rune(out[i:])[0], i, out)
	}
}

// The CLI escapes again what it prints, whatever the server sends:
// host list, host show, host events (table and --follow) and watch; with
// -o json the same values, their controls as JSON escapes.
func TestCLIEscapesClientText(t *testing.T) {
	c := &client{output: "table"}
	h := api.HostView{Host: inventory.Host{MAC: "52:54:00:00:00:01", State: inventory.StateFailed, Name: raw, Profile: raw, LastIP: raw, FailedMsg: raw,
		Facts: inventory.Facts{Serial: raw, Product: raw, Manufacturer: raw, UUID: raw, BuildArch: raw, Platform: raw}, LastArch: raw}}
	var list, show, events bytes.Buffer
	if err := printHosts(c, &list, []api.HostView{h}, false); err != nil {
		t.Fatal(err)
	}
	if err := showHost(c, &show, h); err != nil {
		t.Fatal(err)
	}
	p := &eventPrinter{out: &events}
	if err := p.print(inventory.StoredEvent{MAC: h.MAC, Event: inventory.Event{Kind: raw, Detail: raw}}); err != nil {
		t.Fatal(err)
	}
	progress := summarize(api.Status{Total: 1, Failed: []string{raw}, Stalled: []string{raw}}).line(10)
	for what, out := range map[string]string{"host list": list.String(), "host show": show.String(), "host events": events.String(), "watch": progress} {
		terminalSafe(t, what, out)
		if !strings.Contains(out, `\x1b]0;pwned\x07\x1b[2J\u009b2J\u202eevil\xff\nfake line`) {
			t.Errorf("%s does not show the escaped text:\n%s", what, out)
		}
	}
	if n := strings.Count(events.String(), "\n"); n != 2 {
		t.Errorf("one event took %d lines:\n%s", n, events.String())
	}

	// -o json: the same values, their controls as JSON escapes.
	var listJSON, eventsJSON bytes.Buffer
	if err := printHosts(&client{output: "json"}, &listJSON, []api.HostView{h}, true); err != nil {
		t.Fatal(err)
	}
	p = &eventPrinter{out: &eventsJSON, json: true}
	if err := p.print(inventory.StoredEvent{MAC: h.MAC, Event: inventory.Event{Kind: raw, Detail: raw}}); err != nil {
		t.Fatal(err)
	}
	var back api.HostView
	var ev inventory.StoredEvent
	for what, out := range map[string]string{"host list -o json": listJSON.String(), "host events -o json": eventsJSON.String()} {
		terminalSafe(t, what, out)
	}
	if err := json.Unmarshal(listJSON.Bytes(), &back); err != nil || back.Facts.Product != strings.ToValidUTF8(raw, "\ufffd") {
		t.Errorf("host list -o json changed the product to %q (%v)", back.Facts.Product, err)
	}
	if err := json.Unmarshal(eventsJSON.Bytes(), &ev); err != nil || ev.Detail != strings.ToValidUTF8(raw, "\ufffd") {
		t.Errorf("host events -o json changed the detail to %q (%v)", ev.Detail, err)
	}
}
