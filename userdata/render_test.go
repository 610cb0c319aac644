package userdata

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*/want.golden from the current output")

// goldenInput is testdata/golden/<case>/input.json; base.yaml and
// overrides.yaml beside it are optional.
type goldenInput struct {
	Site        Site   `json:"site"`
	HostName    string `json:"hostName"`
	CallbackURL string `json:"callbackURL"`
}

func loadGolden(t testing.TB, dir string) Input {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gi goldenInput
	if err := json.Unmarshal(raw, &gi); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	in := Input{Site: gi.Site, HostName: gi.HostName, CallbackURL: gi.CallbackURL}
	in.Base = readOptional(t, filepath.Join(dir, "base.yaml"))
	in.Overrides = readOptional(t, filepath.Join(dir, "overrides.yaml"))
	return in
}

func readOptional(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenDirs(t testing.TB) []string {
	dirs, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	return dirs
}

func TestRenderGolden(t *testing.T) {
	for _, dir := range goldenDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in := loadGolden(t, dir)
			got, err := Render(in)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			path := filepath.Join(dir, "want.golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./userdata/ -run Golden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s\n--- got\n%s\n--- want\n%s", path, got, want)
			}

			// Rendering the output again as a base changes nothing: the
			// callback step is replaced, not duplicated, and computed
			// fields are stable.
			again := in
			again.Base, again.Overrides = got, nil
			got2, err := Render(again)
			if err != nil {
				t.Fatalf("re-render: %v", err)
			}
			if !bytes.Equal(got, got2) {
				t.Errorf("re-render differs\n--- first\n%s\n--- second\n%s", got, got2)
			}
		})
	}
}

// decodeOut parses a rendered document into plain Go values.
func decodeOut(t *testing.T, out []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(out, []byte("#cloud-config\n")) {
		t.Fatalf("output does not start with #cloud-config:\n%s", out)
	}
	var m map[string]any
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out)
	}
	return m
}

func dig(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			switch mm := m.(type) {
			case map[string]any:
				m = mm[k]
			case map[any]any: // yaml.v3's choice when a key is not a string
				m = mm[k]
			default:
				return nil
			}
		case int:
			s, ok := m.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			if k < 0 {
				k = len(s) + k
			}
			m = s[k]
		}
	}
	return m
}

// The golden files pin the layout; these assertions pin the meaning, so a
// careless -update cannot bless a wrong document.
func TestRenderSemantics(t *testing.T) {
	render := func(t *testing.T, name string) map[string]any {
		t.Helper()
		out, err := Render(loadGolden(t, filepath.Join("testdata", "golden", name)))
		if err != nil {
			t.Fatal(err)
		}
		return decodeOut(t, out)
	}
	type check struct {
		path []any
		want any
	}
	cases := []struct {
		name   string
		checks []check
	}{
		{"seed-example", []check{
			{[]any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
			{[]any{"stylus", "site", "tags", "myOtherTag"}, "myOtherValue"},
			{[]any{"stylus", "reboot"}, false},
			{[]any{"stages", "initramfs", 0, "users", "palette", "passwd"}, "palette"},
			{[]any{"stages", "initramfs", 0, "users", "palette", "groups", 0}, "sudo"},
			{[]any{"install", "poweroff"}, true},
			{[]any{"stages", "after-install", -1, "name"}, CallbackStepName},
		}},
		{"site-fields", []check{
			{[]any{"stylus", "site", "name"}, "store-042-edge-1"},
			{[]any{"stylus", "site", "projectUid"}, "63ec28d16b39cf0000d4732e"},
			{[]any{"stylus", "site", "edgeHostToken"}, "a4P5DzeJfeo6Un0X81dUyxaq491y05GL"},
			{[]any{"stylus", "site", "registrationURL"}, "https://edge-registration-app.vercel.app/"},
			{[]any{"stylus", "site", "tags", "store"}, "042"},
		}},
		{"tags-merge", []check{
			{[]any{"stylus", "site", "tags", "fleet"}, "retail"},
			{[]any{"stylus", "site", "tags", "rack"}, "r12"},
			{[]any{"stylus", "site", "tags", "slot"}, "7"},
		}},
		{"name-from-hostname", []check{{[]any{"stylus", "site", "name"}, "edge-host-01"}}},
		{"reboot-passthrough", []check{
			{[]any{"stylus", "reboot"}, true},
			{[]any{"install", "reboot"}, true},
			{[]any{"install", "poweroff"}, nil}, // no default beside an explicit reboot
			{[]any{"install", "device"}, "/dev/sda"},
		}},
		{"reboot-install", []check{{[]any{"install", "reboot"}, true}, {[]any{"install", "poweroff"}, nil}}},
		{"reboot-stylus", []check{{[]any{"stylus", "reboot"}, true}, {[]any{"install", "poweroff"}, nil}}},
		{"reboot-false", []check{{[]any{"install", "reboot"}, false}, {[]any{"install", "poweroff"}, nil}}},
		{"poweroff-false", []check{{[]any{"install", "poweroff"}, false}, {[]any{"install", "reboot"}, nil}}},
		{"poweroff-false-reboot", []check{{[]any{"install", "poweroff"}, false}, {[]any{"install", "reboot"}, true}}},
		{"poweroff-override-false", []check{{[]any{"install", "poweroff"}, false}}},
		{"poweroff-default", []check{{[]any{"install", "poweroff"}, true}}},
		{"network-dhcp", []check{
			{[]any{"stylus", "site", "network", "type"}, "dhcp"},
			{[]any{"stylus", "site", "network", "ipAddress"}, nil},
			{[]any{"stylus", "site", "network", "gateway"}, nil},
			{[]any{"stylus", "site", "network", "mask"}, nil},
			{[]any{"stylus", "site", "network", "nameserver"}, "10.10.0.2"},
		}},
		{"network-static", []check{
			{[]any{"stylus", "site", "network", "type"}, "static"},
			{[]any{"stylus", "site", "network", "ipAddress"}, "172.16.4.20"},
			{[]any{"stylus", "site", "network", "mask"}, 22},
			{[]any{"stylus", "site", "network", "gateway"}, "172.16.7.254"},
			{[]any{"stylus", "site", "network", "nameserver"}, "172.16.4.2"},
			{[]any{"stylus", "site", "network", "httpProxy"}, "http://proxy.store.example:3128"},
		}},
		{"network-proxy-nameserver", []check{
			{[]any{"stylus", "site", "network", "type"}, "static"},
			{[]any{"stylus", "site", "network", "mask"}, 16},
			{[]any{"stylus", "site", "network", "httpProxy"}, "https://proxy.warehouse.example:8443"},
			{[]any{"stylus", "site", "network", "nameserver"}, "2001:db8::53"},
		}},
		{"overrides-deep-merge", []check{
			{[]any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
			{[]any{"stylus", "site", "projectUid"}, "host-project"},
			{[]any{"stylus", "site", "tags", "fleet"}, "retail"},
			{[]any{"stylus", "site", "tags", "owner"}, "store-042"},
			{[]any{"stylus", "debug"}, true},
			{[]any{"stages", "initramfs", 0, "name"}, "host users replace the profile's list"},
			{[]any{"stages", "initramfs", 1}, nil},
			{[]any{"stages", "boot", 0, "name"}, "profile boot step"},
			{[]any{"install", "device"}, "/dev/nvme0n1"},
			{[]any{"install", "auto"}, true},
			{[]any{"k3s", "enabled"}, true},
		}},
		{"unknown-fields", []check{
			{[]any{"hostname"}, "kairos-{{ trunc 4 .MachineID }}"},
			{[]any{"k3s", "args", 1}, "--flannel-backend=none"},
			{[]any{"k3s", "env", "K3S_KUBECONFIG_MODE"}, "644"},
			{[]any{"write_files", 1, "content"}, "line one\n  indented line two\n"},
			{[]any{"custom", "quoted"}, "yes"},
			{[]any{"custom", "octal"}, 0755},
			{[]any{"custom", "binary"}, "hello"},
			{[]any{"custom", "long_string"}, "folded text that spans two lines"},
			{[]any{"stylus", "site", "futureField", "nested", 2}, 3},
			{[]any{"stylus", "includeTui"}, true},
		}},
		{"callback-existing-after-install", []check{
			{[]any{"stages", "after-install", 0, "name"}, "copy logs"},
			{[]any{"stages", "after-install", 1, "name"}, "sync disks"},
			{[]any{"stages", "after-install", 2, "name"}, CallbackStepName},
			{[]any{"stages", "after-install", 3}, nil},
			{[]any{"stages", "after-install", 2, "commands", 0},
				"curl -fsS -X POST --retry 5 --retry-connrefused http://10.0.0.1:8080/callback/fresh-token_01/done || wget -q -O- --post-data= http://10.0.0.1:8080/callback/fresh-token_01/done"},
		}},
		{"no-callback", []check{{[]any{"stages"}, nil}, {[]any{"stylus", "site", "name"}, "preview-only"}}},
		{"empty-base", []check{
			{[]any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
			{[]any{"stylus", "site", "network", "type"}, "dhcp"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.name)
			for _, c := range tc.checks {
				if got := dig(m, c.path...); got != c.want {
					t.Errorf("%v = %#v, want %#v", c.path, got, c.want)
				}
			}
		})
	}
}

func TestRenderKeyOrder(t *testing.T) {
	out, err := Render(loadGolden(t, filepath.Join("testdata", "golden", "overrides-deep-merge")))
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '#' && line[0] != '-' {
			top = append(top, strings.TrimSuffix(line, ":"))
		}
	}
	// Base order first, then keys the overrides add.
	want := []string{"stylus", "stages", "install", "k3s"}
	if strings.Join(top, ",") != strings.Join(want, ",") {
		t.Errorf("top-level keys %v, want %v", top, want)
	}
}

func TestRenderCallbackURLLiteral(t *testing.T) {
	// The lab's installer stand-in greps the raw user-data for the URL.
	in := Input{Site: Site{PaletteEndpoint: "api.spectrocloud.com"}, CallbackURL: "http://10.0.2.2:8080/callback/3f9a0c"}
	out, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("http://10.0.2.2:8080/callback/3f9a0c/done")); n != 2 {
		t.Errorf("callback URL appears %d times in the text, want 2 (curl and wget):\n%s", n, out)
	}
}

func TestRenderDoesNotModifyInput(t *testing.T) {
	in := loadGolden(t, filepath.Join("testdata", "golden", "tags-merge"))
	tags := map[string]string{}
	for k, v := range in.Site.Tags {
		tags[k] = v
	}
	base := append([]byte(nil), in.Base...)
	if _, err := Render(in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(base, in.Base) || len(tags) != len(in.Site.Tags) {
		t.Error("Render modified its input")
	}
}

func TestMetaData(t *testing.T) {
	tests := []struct {
		id, host string
		want     map[string]string
	}{
		{"iid-aa-bb", "edge-01", map[string]string{"instance-id": "iid-aa-bb", "local-hostname": "edge-01"}},
		{"iid-1", "", map[string]string{"instance-id": "iid-1"}},
		{"id: with colon", "#hash", map[string]string{"instance-id": "id: with colon", "local-hostname": "#hash"}},
	}
	for _, tc := range tests {
		var got map[string]string
		if err := yaml.Unmarshal(MetaData(tc.id, tc.host), &got); err != nil {
			t.Fatalf("MetaData(%q, %q) is not YAML: %v", tc.id, tc.host, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("MetaData(%q, %q) = %v, want %v", tc.id, tc.host, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("MetaData(%q, %q)[%s] = %q, want %q", tc.id, tc.host, k, got[k], v)
			}
		}
	}
}

func TestRenderInputShapes(t *testing.T) {
	site := Site{PaletteEndpoint: "api.spectrocloud.com"}
	tests := []struct {
		name string
		in   Input
		path []any
		want any
	}{
		{"header-only base", Input{Site: site, Base: []byte("#cloud-config\n")}, []any{"install", "poweroff"}, true},
		{"null document", Input{Site: site, Base: []byte("~\n"), Overrides: []byte("---\n")}, []any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
		{"CRLF line endings", Input{Base: []byte("#cloud-config\r\nstylus:\r\n  site:\r\n    paletteEndpoint: p.example\r\n")}, []any{"stylus", "site", "paletteEndpoint"}, "p.example"},
		{"byte order mark", Input{Base: []byte("\ufeffstylus: {site: {paletteEndpoint: bom.example}}\n")}, []any{"stylus", "site", "paletteEndpoint"}, "bom.example"},
		{"null site replaced by computed fields", Input{Site: site, Base: []byte("stylus:\n  site:\n")}, []any{"stylus", "site", "paletteEndpoint"}, "api.spectrocloud.com"},
		{"override null replaces a value", Input{Site: site, Base: []byte("k3s: {enabled: true}\n"), Overrides: []byte("k3s:\n")}, []any{"k3s"}, nil},
		{"host network without type keeps the profile's", Input{
			Site: Site{PaletteEndpoint: "e.example", Network: &Network{Nameserver: "9.9.9.9"}},
			Base: []byte("stylus: {site: {network: {type: dhcp}}}\n"),
		}, []any{"stylus", "site", "network", "type"}, "dhcp"},
		{"mask written as a number", Input{Base: []byte(endpointBase + "    network: {type: static, ipAddress: 10.0.0.9, mask: 24, gateway: 10.0.0.1}\n")},
			[]any{"stylus", "site", "network", "mask"}, 24},
		{"explicit poweroff true", Input{Site: site, Base: []byte("install: {poweroff: true}\n")}, []any{"install", "poweroff"}, true},
		{"explicit poweroff True", Input{Site: site, Base: []byte("install: {poweroff: True}\n")}, []any{"install", "poweroff"}, true},
		{"override poweroff false", Input{Site: site, Base: []byte("install: {poweroff: true}\n"), Overrides: []byte("install: {poweroff: false}\n")}, []any{"install", "poweroff"}, false},
		{"null install gets the default", Input{Site: site, Base: []byte("install:\n")}, []any{"install", "poweroff"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := dig(decodeOut(t, out), tc.path...); got != tc.want {
				t.Errorf("%v = %#v, want %#v\n%s", tc.path, got, tc.want, out)
			}
		})
	}
}
