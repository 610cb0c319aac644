package ipxe

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseQuery feeds raw stage-2 query strings, as any client on the
// provisioning network can send them, through the parser: it must never
// panic, and what it accepts must be bounded and free of control bytes.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"mac=52-54-00-12-34-56&uuid=11111111-2222-3333-4444-555555555555&serial=SN%201&manufacturer=QEMU&product=Standard%20PC&buildarch=x86_64&platform=pcbios",
		"mac=52:54:00:12:34:56",
		"mac=&mac=",
		"serial=%00%0a",
		"mac=" + strings.Repeat("a", 200),
		"%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(vals)
		if err != nil {
			return
		}
		if q.MAC == "" {
			t.Fatalf("accepted a query without mac: %q", raw)
		}
		for _, v := range []string{q.MAC, q.UUID, q.Serial, q.Manufacturer, q.Product, q.BuildArch, q.Platform} {
			if len(v) > maxQueryField || strings.ContainsAny(v, "\x00\n\r") {
				t.Fatalf("accepted field %q from %q", v, raw)
			}
		}
		// Whatever was accepted must render into a script line that
		// cannot break out of its echo.
		if s := string(RenderWait(q.Serial, q.Product, "http://s/boot.ipxe", 1)); strings.Count(s, "\n") != 6 {
			t.Fatalf("wait script for %q has %d lines:\n%s", raw, strings.Count(s, "\n"), s)
		}
	})
}
