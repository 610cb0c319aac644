package userdata

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const (
		token    = "a4P5DzeJfeo6Un0X81dUyxaq491y05GL"
		passwd1  = "palette-pw-1"
		passwd2  = "$6$rounds=4096$salt$hash"
		proxyPw  = "pr0xy-secret"
		callback = "http://10.0.0.1:8080/callback/tok123"
	)
	in := Input{
		Base: []byte(`#cloud-config
users:
  - name: kairos
    passwd: ` + passwd1 + `
stages:
  initramfs:
    - users:
        palette:
          groups: [sudo]
          passwd: "` + passwd2 + `"
`),
		Site: Site{
			PaletteEndpoint: "api.spectrocloud.com",
			EdgeHostToken:   token,
			Network:         &Network{Type: "dhcp", HTTPProxy: "http://ops:" + proxyPw + "@proxy.example:3128"},
		},
		HostName:    "edge-01",
		CallbackURL: callback,
	}
	doc, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{token, passwd1, passwd2, proxyPw} {
		if !bytes.Contains(doc, []byte(secret)) {
			t.Fatalf("rendered document lacks %q; the test proves nothing", secret)
		}
	}

	red := Redact(doc)
	for _, secret := range []string{token, passwd1, passwd2, proxyPw} {
		if bytes.Contains(red, []byte(secret)) {
			t.Errorf("Redact left %q in:\n%s", secret, red)
		}
	}
	m := decodeOut(t, red)
	checks := []struct {
		path []any
		want any
	}{
		{[]any{"stylus", "site", "edgeHostToken"}, "********"},
		{[]any{"users", 0, "passwd"}, "********"},
		{[]any{"stages", "initramfs", 0, "users", "palette", "passwd"}, "********"},
		{[]any{"stylus", "site", "network", "httpProxy"}, "http://ops:********@proxy.example:3128"},
		// Everything else is left for the operator to read.
		{[]any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
		{[]any{"stylus", "site", "name"}, "edge-01"},
		{[]any{"users", 0, "name"}, "kairos"},
		{[]any{"stages", "initramfs", 0, "users", "palette", "groups", 0}, "sudo"},
		{[]any{"install", "poweroff"}, true},
	}
	for _, c := range checks {
		if got := dig(m, c.path...); got != c.want {
			t.Errorf("%v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if !bytes.Contains(red, []byte(callback+"/done")) {
		t.Errorf("Redact removed the callback URL:\n%s", red)
	}
}

func TestRedactEdgeCases(t *testing.T) {
	tests := []struct {
		name, in  string
		absent    []string
		present   []string
		cloudHead bool
	}{
		{"no header kept as is", "stylus:\n  site:\n    edgeHostToken: tkn-1\n", []string{"tkn-1"}, []string{"edgeHostToken: '********'"}, false},
		{"unparseable withheld", "edgeHostToken: tkn-2\n  bad: [\n", []string{"tkn-2", "bad"}, []string{"withheld"}, true},
		{"list at top withheld", "- passwd: pw-3\n", []string{"pw-3"}, []string{"withheld"}, true},
		{"proxy without password untouched", "httpProxy: http://proxy:3128\n", nil, []string{"httpProxy: http://proxy:3128"}, false},
		{"empty and null passwd untouched", "a:\n  passwd: \"\"\nb:\n  passwd:\n", nil, []string{`passwd: ""`}, false},
		{"empty document", "", nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Redact([]byte(tc.in)))
			for _, s := range tc.absent {
				if strings.Contains(got, s) {
					t.Errorf("output contains %q:\n%s", s, got)
				}
			}
			for _, s := range tc.present {
				if !strings.Contains(got, s) {
					t.Errorf("output lacks %q:\n%s", s, got)
				}
			}
			if strings.HasPrefix(got, "#cloud-config") != tc.cloudHead {
				t.Errorf("header: got %q", got)
			}
		})
	}
}

func TestRedactGoldenOutputs(t *testing.T) {
	// Every golden output redacts to a document with no token or password.
	for _, dir := range goldenDirs(t) {
		in := loadGolden(t, dir)
		doc, err := Render(in)
		if err != nil {
			t.Fatal(err)
		}
		red := Redact(doc)
		decodeOut(t, red)
		if tok := in.Site.EdgeHostToken; tok != "" && bytes.Contains(red, []byte(tok)) {
			t.Errorf("%s: token survives Redact", filepath.Base(dir))
		}
		for _, pw := range []string{"passwd: palette", "passwd: kairos", "passwd: ops"} {
			if bytes.Contains(red, []byte(pw)) {
				t.Errorf("%s: %q survives Redact", filepath.Base(dir), pw)
			}
		}
	}
}

// HasSecrets is true exactly when Redact would mask something; a
// document it cannot read counts as holding some.
func TestHasSecrets(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{"", false},
		{"stylus:\n  site:\n    paletteEndpoint: api.example.com\n", false},
		{"stylus:\n  site:\n    edgeHostToken: abc\n", true},
		{"stylus:\n  site:\n    edgeHostToken: \"\"\n", false},
		{"stages:\n  initramfs:\n    - users:\n        kairos:\n          passwd: kairos\n", true},
		{"stylus:\n  site:\n    network:\n      httpProxy: http://u:p@proxy:3128\n", true},
		{"stylus:\n  site:\n    network:\n      httpProxy: http://proxy:3128\n", false},
		{"stylus: [unclosed\n", true},
	} {
		if got := HasSecrets([]byte(tc.doc)); got != tc.want {
			t.Errorf("HasSecrets(%q) = %v, want %v", tc.doc, got, tc.want)
		}
	}
}
