package userdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const endpointBase = "stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.com\n"

func staticNet(ip, mask, gw string) *Network {
	return &Network{Type: "static", IPAddress: ip, Mask: mask, Gateway: gw}
}

func fieldsOf(t *testing.T, err error) []FieldError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Errors
}

func TestRenderValidation(t *testing.T) {
	ep := Site{PaletteEndpoint: "api.spectrocloud.com"}
	withNet := func(n *Network) Site { s := ep; s.Network = n; return s }

	tests := []struct {
		name   string
		in     Input
		fields []string // every FieldError.Field, in order
		reason string   // a substring of the first reason
	}{
		{"missing paletteEndpoint", Input{HostName: "h1"}, []string{"stylus.site.paletteEndpoint"}, "required"},
		{"paletteEndpoint null in YAML", Input{Base: []byte("stylus:\n  site:\n    paletteEndpoint:\n")}, []string{"stylus.site.paletteEndpoint"}, "required"},
		{"bad network type", Input{Site: withNet(&Network{Type: "manual"})}, []string{"stylus.site.network.type"}, `"manual"`},
		{"network type missing in YAML", Input{Base: []byte(endpointBase + "    network:\n      nameserver: 1.1.1.1\n")}, []string{"stylus.site.network.type"}, "required"},
		{"static without gateway", Input{Site: withNet(staticNet("10.0.0.5", "24", ""))}, []string{"stylus.site.network.gateway"}, "required"},
		{"static without ipAddress", Input{Site: withNet(staticNet("", "24", "10.0.0.1"))}, []string{"stylus.site.network.ipAddress"}, "required"},
		{"static without mask", Input{Site: withNet(staticNet("10.0.0.5", "", "10.0.0.1"))}, []string{"stylus.site.network.mask"}, "prefix length"},
		{"static with nothing", Input{Site: withNet(&Network{Type: "static"})},
			[]string{"stylus.site.network.ipAddress", "stylus.site.network.mask", "stylus.site.network.gateway"}, "required"},
		{"mask 33", Input{Site: withNet(staticNet("10.0.0.5", "33", "10.0.0.1"))}, []string{"stylus.site.network.mask"}, "0..32"},
		{"dotted netmask", Input{Site: withNet(staticNet("10.0.0.5", "255.255.255.0", "10.0.0.1"))}, []string{"stylus.site.network.mask"}, "prefix length 24"},
		{"gateway outside subnet", Input{Site: withNet(staticNet("10.0.0.5", "24", "10.0.1.1"))}, []string{"stylus.site.network.gateway"}, "outside 10.0.0.0/24"},
		{"gateway outside subnet from YAML", Input{Base: []byte(endpointBase + "    network:\n      type: static\n      ipAddress: 192.168.1.10\n      mask: 25\n      gateway: 192.168.1.129\n")},
			[]string{"stylus.site.network.gateway"}, "outside 192.168.1.0/25"},
		{"gateway is own address", Input{Site: withNet(staticNet("10.0.0.5", "24", "10.0.0.5"))}, []string{"stylus.site.network.gateway"}, "own ipAddress"},
		{"ipAddress is broadcast", Input{Site: withNet(staticNet("10.0.0.255", "24", "10.0.0.1"))}, []string{"stylus.site.network.ipAddress"}, "broadcast"},
		{"ipAddress not IPv4", Input{Site: withNet(staticNet("fe80::1", "24", "10.0.0.1"))}, []string{"stylus.site.network.ipAddress"}, "IPv4"},
		{"gateway not an address", Input{Site: withNet(staticNet("10.0.0.5", "24", "router"))}, []string{"stylus.site.network.gateway"}, "IPv4"},
		{"bad nameserver", Input{Site: withNet(&Network{Type: "dhcp", Nameserver: "dns.example"})}, []string{"stylus.site.network.nameserver"}, "not an IP"},
		{"proxy not http", Input{Site: withNet(&Network{Type: "dhcp", HTTPProxy: "socks5://proxy:1080"})}, []string{"stylus.site.network.httpProxy"}, "http://"},
		{"proxy not a URL", Input{Site: withNet(&Network{Type: "dhcp", HTTPProxy: "proxy:3128"})}, []string{"stylus.site.network.httpProxy"}, "http://"},
		{"proxy without host", Input{Site: withNet(&Network{Type: "dhcp", HTTPProxy: "http://"})}, []string{"stylus.site.network.httpProxy"}, "no host"},
		{"bad registrationURL", Input{Site: Site{PaletteEndpoint: "api.spectrocloud.com", RegistrationURL: "edge-registration.vercel.app"}}, []string{"stylus.site.registrationURL"}, "URL"},
		{"bad name", Input{Site: Site{PaletteEndpoint: "api.spectrocloud.com", Name: "rack 1/node!"}}, []string{"stylus.site.name"}, "letters"},
		{"bad host name", Input{Site: ep, HostName: "-leading-dash"}, []string{"stylus.site.name"}, "letters"},
		{"name too long", Input{Site: ep, HostName: strings.Repeat("a", 64)}, []string{"stylus.site.name"}, "at most 63"},
		{"empty tag key", Input{Site: Site{PaletteEndpoint: "api.spectrocloud.com", Tags: map[string]string{"": "x"}}}, []string{"stylus.site.tags"}, "non-empty"},
		{"tags not a mapping", Input{Base: []byte(endpointBase + "    tags: [a, b]\n")}, []string{"stylus.site.tags"}, "mapping"},
		{"tag value not scalar", Input{Base: []byte(endpointBase + "    tags:\n      a: [1]\n")}, []string{"stylus.site.tags.a"}, "scalar"},
		{"endpoint not scalar", Input{Base: []byte("stylus:\n  site:\n    paletteEndpoint: {a: b}\n")},
			[]string{"stylus.site.paletteEndpoint", "stylus.site.paletteEndpoint"}, "scalar"},
		{"token with space, value withheld", Input{Site: Site{PaletteEndpoint: "api.spectrocloud.com", EdgeHostToken: "s3cret token"}}, []string{"stylus.site.edgeHostToken"}, "withheld"},
		{"stylus not a mapping", Input{Base: []byte("stylus: [1]\n")}, []string{"stylus"}, "mapping"},
		{"site not a mapping", Input{Base: []byte("stylus:\n  site: text\n")}, []string{"stylus.site"}, "mapping"},
		{"poweroff a word", Input{Site: ep, Base: []byte("install:\n  poweroff: maybe\n")}, []string{"install.poweroff"}, `must be true or false, not "maybe"`},
		{"poweroff a number", Input{Site: ep, Overrides: []byte("install:\n  poweroff: 7\n")}, []string{"install.poweroff"}, "must be true or false, not 7"},
		{"poweroff a quoted boolean", Input{Site: ep, Overrides: []byte("install:\n  poweroff: \"false\"\n")}, []string{"install.poweroff"}, "(a string)"},
		{"poweroff yes", Input{Site: ep, Overrides: []byte("install:\n  poweroff: yes\n")}, []string{"install.poweroff"}, "must be true or false"},
		{"poweroff null", Input{Site: ep, Base: []byte("install:\n  poweroff: true\n"), Overrides: []byte("install:\n  poweroff:\n")}, []string{"install.poweroff"}, "not null"},
		{"poweroff a list", Input{Site: ep, Base: []byte("install:\n  poweroff: [true]\n")}, []string{"install.poweroff"}, "not a list"},
		{"reboot a word", Input{Site: ep, Base: []byte("install:\n  reboot: later\n")}, []string{"install.reboot"}, "must be true or false"},
		{"stylus reboot a number", Input{Site: ep, Base: []byte("stylus:\n  reboot: 1\n")}, []string{"stylus.reboot"}, "must be true or false, not 1"},
		{"poweroff and reboot both true", Input{Site: ep, Base: []byte("install:\n  poweroff: true\n"), Overrides: []byte("install:\n  reboot: true\n")}, []string{"install.poweroff"}, "at most one"},
		{"install not a mapping", Input{Site: ep, Base: []byte("install: yes\n")}, []string{"install"}, "mapping"},
		{"stages not a mapping", Input{Site: ep, CallbackURL: "http://10.0.0.1/callback/t", Base: []byte("stages: [a]\n")}, []string{"stages"}, "mapping"},
		{"after-install not a list", Input{Site: ep, CallbackURL: "http://10.0.0.1/callback/t", Base: []byte("stages:\n  after-install: {a: b}\n")}, []string{"stages.after-install"}, "list"},
		{"callback URL with shell characters", Input{Site: ep, CallbackURL: "http://10.0.0.1/callback/t;reboot"}, []string{"callbackURL"}, "unquoted"},
		{"callback URL not http", Input{Site: ep, CallbackURL: "ftp://10.0.0.1/callback/t"}, []string{"callbackURL"}, "http://"},
		{"bad YAML in base", Input{Site: ep, Base: []byte("stylus:\n  site: [unclosed\n")}, []string{"profile.userdata"}, "invalid YAML"},
		{"bad YAML in overrides", Input{Site: ep, Overrides: []byte("a: b\n c: d\n")}, []string{"userdata"}, "invalid YAML"},
		{"both documents bad", Input{Site: ep, Base: []byte("- 1\n"), Overrides: []byte("\t: x")}, []string{"profile.userdata", "userdata"}, "mapping"},
		{"top-level list", Input{Site: ep, Base: []byte("- stylus: {}\n")}, []string{"profile.userdata"}, "top level must be a mapping, not a list"},
		{"top-level scalar", Input{Site: ep, Overrides: []byte("just text\n")}, []string{"userdata"}, "not a scalar"},
		{"oversized base", Input{Site: ep, Base: bytes.Repeat([]byte("# padding\n"), MaxDocumentSize/10+1)}, []string{"profile.userdata"}, "limit"},
		{"oversized overrides", Input{Site: ep, Overrides: make([]byte, MaxDocumentSize+1)}, []string{"userdata"}, "limit"},
		{"alias bomb", Input{Site: ep, Base: []byte(aliasBomb)}, []string{"profile.userdata"}, "anchors and aliases"},
		{"anchor alone", Input{Site: ep, Overrides: []byte("a: &x 1\n")}, []string{"userdata"}, "anchors and aliases"},
		{"merge key", Input{Site: ep, Overrides: []byte("a: {b: 1}\nc:\n  <<: *a\n")}, []string{"userdata"}, ""},
		{"duplicate key", Input{Site: ep, Base: []byte("install:\n  poweroff: true\n  poweroff: false\n")}, []string{"profile.userdata"}, "duplicate key"},
		{"two documents", Input{Site: ep, Overrides: []byte("a: 1\n---\nb: 2\n")}, []string{"userdata"}, "more than one"},
		{"deep nesting", Input{Site: ep, Overrides: []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))}, []string{"userdata"}, ""},
		{"deep nesting in a mapping", Input{Site: ep, Overrides: []byte("a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100))}, []string{"userdata"}, "deeper than"},
		{"mapping too wide", Input{Site: ep, Overrides: []byte(wideMapping(maxMapKeys + 1))}, []string{"userdata"}, "more than 1000 keys"},
		{"invalid binary value", Input{Site: ep, Base: []byte("a: !!binary 0\n")}, []string{"profile.userdata"}, "invalid YAML value"},
		{"too many nodes", Input{Site: ep, Base: []byte("a: [" + strings.Repeat("1,", maxNodes) + "1]\n")}, []string{"profile.userdata"}, "nodes"},
		{"every problem reported", Input{
			HostName: "bad name",
			Site:     Site{Network: &Network{Type: "static", IPAddress: "10.0.0.5", Mask: "255.255.255.0", Gateway: "10.9.9.9", Nameserver: "x", HTTPProxy: "x"}},
		}, []string{
			"stylus.site.paletteEndpoint", "stylus.site.name", "stylus.site.network.mask",
			"stylus.site.network.nameserver", "stylus.site.network.httpProxy",
		}, "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(tc.in)
			if err == nil {
				t.Fatalf("Render succeeded, want errors on %v:\n%s", tc.fields, out)
			}
			if out != nil {
				t.Errorf("Render returned output with an error")
			}
			fes := fieldsOf(t, err)
			var got []string
			for _, fe := range fes {
				got = append(got, fe.Field)
				if fe.Reason == "" {
					t.Errorf("%s: empty reason", fe.Field)
				}
			}
			if !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("fields %q, want %q (errors: %v)", got, tc.fields, err)
			}
			if !strings.Contains(fes[0].Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", fes[0].Reason, tc.reason)
			}
			if !strings.Contains(err.Error(), fes[0].Field+": ") {
				t.Errorf("Error() %q does not name %s", err.Error(), fes[0].Field)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Error() leaks the token: %q", err.Error())
			}
		})
	}
}

func wideMapping(n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "k%d: %d\n", i, i)
	}
	return sb.String()
}

// aliasBomb is the classic "billion laughs" in YAML.
const aliasBomb = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`

func TestValidateSite(t *testing.T) {
	full := Site{
		PaletteEndpoint: "api.spectrocloud.com",
		Name:            "edge-01",
		RegistrationURL: "https://edge-registration.vercel.app",
		ProjectUID:      "63ec28d16b39cf0000d4732e",
		EdgeHostToken:   "a4P5DzeJfeo6Un0X81dUyxaq491y05GL",
		Tags:            map[string]string{"rack": "r1"},
		Network:         &Network{Type: "static", IPAddress: "10.0.0.5", Mask: "24", Gateway: "10.0.0.1", Nameserver: "10.0.0.2", HTTPProxy: "http://user:pw@proxy:3128"},
	}
	tests := []struct {
		name   string
		site   Site
		fields []string
	}{
		{"zero site is valid (endpoint comes from the profile)", Site{}, nil},
		{"full site", full, nil},
		{"dhcp", Site{Network: &Network{Type: "dhcp"}}, nil},
		{"endpoint as URL", Site{PaletteEndpoint: "https://api.spectrocloud.com"}, nil},
		{"endpoint with space", Site{PaletteEndpoint: "api spectrocloud"}, []string{"stylus.site.paletteEndpoint"}},
		{"endpoint bad URL scheme", Site{PaletteEndpoint: "ftp://api.spectrocloud.com"}, []string{"stylus.site.paletteEndpoint"}},
		{"network without type", Site{Network: &Network{Nameserver: "10.0.0.2"}}, []string{"stylus.site.network.type"}},
		{"static incomplete", Site{Network: &Network{Type: "static", Mask: "24"}}, []string{"stylus.site.network.ipAddress", "stylus.site.network.gateway"}},
		{"/31 point to point is fine", Site{Network: staticNet("10.0.0.0", "31", "10.0.0.1")}, nil},
		{"/0 contains everything", Site{Network: staticNet("10.0.0.5", "0", "192.0.2.1")}, nil},
		{"network address", Site{Network: staticNet("10.0.0.0", "24", "10.0.0.1")}, []string{"stylus.site.network.ipAddress"}},
		{"tag with control char", Site{Tags: map[string]string{"a": "x\x00y"}}, []string{"stylus.site.tags.a"}},
		{"projectUid with newline", Site{ProjectUID: "abc\ndef"}, []string{"stylus.site.projectUid"}},
		{"several", Site{Name: "a b", RegistrationURL: "nope", Tags: map[string]string{"": "v"}, Network: &Network{Type: "bogus"}},
			[]string{"stylus.site.name", "stylus.site.registrationURL", "stylus.site.tags", "stylus.site.network.type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSite(tc.site)
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("ValidateSite: %v", err)
				}
				return
			}
			var got []string
			for _, fe := range fieldsOf(t, err) {
				got = append(got, fe.Field)
			}
			if !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("fields %q, want %q (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestParsePrefixLen(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  string
	}{
		{"24", 24, ""},
		{" 8 ", 8, ""},
		{"0", 0, ""},
		{"32", 32, ""},
		{"024", 24, ""},
		{"33", 0, "out of range"},
		{"99999999999999999999", 0, "out of range"},
		{"-1", 0, "not a prefix length"},
		{"/24", 0, "not a prefix length"},
		{"24.0", 0, "not a prefix length"},
		{"abc", 0, "not a prefix length"},
		{"", 0, "empty"},
		{"255.255.255.0", 0, "dotted netmask; write its prefix length 24"},
		{"255.255.252.0", 0, "prefix length 22"},
		{"0.0.0.0", 0, "prefix length 0"},
		{"255.0.255.0", 0, "not a contiguous netmask"},
	}
	for _, tc := range tests {
		got, err := ParsePrefixLen(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParsePrefixLen(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParsePrefixLen(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePrefixLen(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
		}
	}
}

func TestNetworkJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Network
		err  bool
	}{
		{`{"type":"static","ipAddress":"10.0.0.5","mask":"24","gateway":"10.0.0.1"}`, Network{Type: "static", IPAddress: "10.0.0.5", Mask: "24", Gateway: "10.0.0.1"}, false},
		{`{"type":"static","mask":24}`, Network{Type: "static", Mask: "24"}, false},
		{`{"type":"dhcp","mask":null,"httpProxy":"http://p:3128"}`, Network{Type: "dhcp", HTTPProxy: "http://p:3128"}, false},
		{`{"mask":true}`, Network{}, true},
		{`{"mask":[24]}`, Network{}, true},
	}
	for _, tc := range tests {
		var got Network
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err != nil) != tc.err {
			t.Errorf("Unmarshal(%s): err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && got != tc.want {
			t.Errorf("Unmarshal(%s) = %+v, want %+v", tc.in, got, tc.want)
		}
	}

	// Round trip through the inventory's JSON.
	s := Site{PaletteEndpoint: "api.spectrocloud.com", Tags: map[string]string{"a": "b"}, Network: &Network{Type: "static", Mask: "24"}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Site
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, back) {
		t.Errorf("round trip %+v != %+v", back, s)
	}
}

func TestSiteStringHidesToken(t *testing.T) {
	s := Site{PaletteEndpoint: "api.spectrocloud.com", EdgeHostToken: "a4P5DzeJfeo6Un0X81dUyxaq491y05GL"}
	for _, text := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprint(&s)} {
		if strings.Contains(text, s.EdgeHostToken) || !strings.Contains(text, "api.spectrocloud.com") {
			t.Errorf("printed Site %q", text)
		}
	}
}
