package userdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzRender feeds arbitrary base, overrides and site JSON to Render. It must
// never panic; on success the output starts with "#cloud-config", parses as
// YAML, and rendering it again as a base gives the same bytes. On failure
// the error is a *ValidationError.
func FuzzRender(f *testing.F) {
	for _, dir := range goldenDirs(f) {
		in := loadGolden(f, dir)
		site, err := json.Marshal(in.Site)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(in.Base, in.Overrides, site, in.HostName, in.CallbackURL)
	}
	f.Add([]byte(aliasBomb), []byte("a: [[[]]]"), []byte(`{"network":{"type":"static","mask":33}}`), "h", "http://x/callback/t")
	f.Add([]byte("stylus: {site: {network: {type: static, ipAddress: 10.0.0.5, mask: 8, gateway: 10.9.9.9}}}"), []byte(nil), []byte(`{"paletteEndpoint":"e"}`), "", "")
	f.Add([]byte("install: {poweroff: maybe, reboot: 7}"), []byte("install: {reboot: true}"), []byte(`{"paletteEndpoint":"e"}`), "", "")

	f.Fuzz(func(t *testing.T, base, overrides, siteJSON []byte, host, callback string) {
		var site Site
		if json.Unmarshal(siteJSON, &site) != nil {
			site = Site{}
		}
		in := Input{Base: base, Overrides: overrides, Site: site, HostName: host, CallbackURL: callback}
		out, err := Render(in)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *ValidationError", err, err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("#cloud-config\n")) {
			t.Fatalf("output lacks the header:\n%s", out)
		}
		var v map[string]any
		if err := yaml.Unmarshal(out, &v); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		again := in
		again.Base, again.Overrides = out, nil
		out2, err := Render(again)
		if err != nil {
			t.Fatalf("re-render failed: %v\n%s", err, out)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("re-render differs\n--- first\n%s\n--- second\n%s", out, out2)
		}
		_ = Redact(out)
	})
}

func BenchmarkRender(b *testing.B) {
	in := loadGolden(b, "testdata/golden/overrides-deep-merge")
	in.Site = Site{EdgeHostToken: "a4P5DzeJfeo6Un0X81dUyxaq491y05GL", Tags: map[string]string{"rack": "r1"},
		Network: &Network{Type: "static", IPAddress: "10.0.0.5", Mask: "24", Gateway: "10.0.0.1"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderMaxSizeRejected(b *testing.B) {
	// Cost of refusing a document just under the size limit that trips the
	// node cap: the worst a hostile upload can make Render do.
	big := append([]byte("a: ["), bytes.Repeat([]byte("1,"), MaxDocumentSize/2-4)...)
	big = append(big, ']')
	in := Input{Base: big}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkRenderWideMappings(b *testing.B) {
	// Twenty mappings at the width cap in both documents, merged key by key:
	// the most keys a document under the size limit can make Render compare.
	var base, over bytes.Buffer
	for m := range 20 {
		fmt.Fprintf(&base, "m%d:\n", m)
		fmt.Fprintf(&over, "m%d:\n", m)
		for i := range maxMapKeys {
			fmt.Fprintf(&base, " k%d: %d\n", i, i)
			fmt.Fprintf(&over, " k%d: %d\n", maxMapKeys-i, i)
		}
	}
	in := Input{Base: base.Bytes(), Overrides: over.Bytes(), Site: Site{PaletteEndpoint: "e"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}
