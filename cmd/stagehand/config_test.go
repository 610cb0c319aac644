package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/dhcp"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newServeFlags() (*flag.FlagSet, *serveOpts) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, serveFlags(fs)
}

func TestParseFlagsPrecedence(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "stagehand.yaml", `
http-port: 9001          # the flag wins
tftp-port: 6969          # the environment wins
dhcp-mode: full          # the file wins
dhcp-dns: [10.0.0.53, 10.0.0.54]
dhcp-lease-time: 30m
log-level: warn          # given as a flag with its default value: the flag wins
`)
	t.Setenv("STAGEHAND_HTTP_PORT", "9002")
	t.Setenv("STAGEHAND_TFTP_PORT", "7070")
	t.Setenv("STAGEHAND_LOG_LEVEL", "debug")
	t.Setenv("STAGEHAND_UNKNOWN_HOSTS", "discover")

	fs, o := newServeFlags()
	if err := parseFlags(fs, []string{"--config", cfg, "--http-port", "9003", "--log-level=info"}); err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http-port (flag)", o.httpPort, 9003},
		{"tftp-port (env)", o.tftpPort, 7070},
		{"unknown-hosts (env, not in file)", o.unknown, "discover"},
		{"dhcp-mode (file)", o.dhcpMode, "full"},
		{"dhcp-dns (file list)", o.dhcpDNS, "10.0.0.53,10.0.0.54"},
		{"dhcp-lease-time (file)", o.leaseTime, 30 * time.Minute},
		{"log-level (flag at its default)", o.logLevel, "info"},
		{"log-format (default)", o.logFormat, "console"},
		{"data-dir (default)", o.dataDir, "/var/lib/stagehand"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseFlagsConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	envCfg := writeFile(t, dir, "env.yaml", "dhcp-mode: off\nhttp-port: 8181\n")
	flagCfg := writeFile(t, dir, "flag.yaml", "http-port: 8282\n")
	t.Setenv("STAGEHAND_CONFIG", envCfg)

	fs, o := newServeFlags()
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	// "off" must stay the string off, not become YAML 1.1's false.
	if o.dhcpMode != "off" || o.httpPort != 8181 {
		t.Fatalf("STAGEHAND_CONFIG file: dhcp-mode %q, http-port %d", o.dhcpMode, o.httpPort)
	}

	fs, o = newServeFlags()
	if err := parseFlags(fs, []string{"--config", flagCfg}); err != nil {
		t.Fatal(err)
	}
	if o.httpPort != 8282 || o.dhcpMode != "proxy" {
		t.Fatalf("--config beats STAGEHAND_CONFIG: http-port %d, dhcp-mode %q", o.httpPort, o.dhcpMode)
	}
}

func TestParseFlagsEmptyKeyKeepsDefault(t *testing.T) {
	// Operators blank a value by deleting it after the colon.
	cfg := writeFile(t, t.TempDir(), "stagehand.yaml", "dhcp-router:\nhttp-port:\ndhcp-dns: []\n")
	fs, o := newServeFlags()
	if err := parseFlags(fs, []string{"--config", cfg}); err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if o.dhcpRouter != "" || o.httpPort != 8080 || o.dhcpDNS != "" {
		t.Fatalf("dhcp-router %q, http-port %d, dhcp-dns %q; want the defaults", o.dhcpRouter, o.httpPort, o.dhcpDNS)
	}
}

func TestParseFlagsEnvList(t *testing.T) {
	t.Setenv("STAGEHAND_DHCP_DNS", "1.1.1.1,9.9.9.9")
	fs, o := newServeFlags()
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	if o.dhcpDNS != "1.1.1.1,9.9.9.9" {
		t.Fatalf("dhcp-dns = %q", o.dhcpDNS)
	}
	ips, err := parseIPs(o.dhcpDNS)
	if err != nil || len(ips) != 2 || ips[1].String() != "9.9.9.9" {
		t.Fatalf("parseIPs = %v, %v", ips, err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		file string // config content; "" means no --config
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		{name: "unknown key", file: "http-port: 80\nhtp-port: 81\nlisten: x\n", want: []string{"unknown key(s) htp-port, listen"}},
		{name: "config key inside the file", file: "config: other.yaml\n", want: []string{"unknown key(s) config"}},
		{name: "bad value in file", file: "http-port: eighty\n", want: []string{"config file key http-port", "eighty"}},
		{name: "bad duration in file", file: "dhcp-lease-time: forever\n", want: []string{"dhcp-lease-time"}},
		{name: "not YAML", file: "http-port: [80\n", want: []string{"stagehand.yaml"}},
		{name: "not a mapping", file: "- http-port\n", want: []string{"stagehand.yaml"}},
		{name: "bad env value", env: map[string]string{"STAGEHAND_HTTP_PORT": "abc"}, want: []string{"STAGEHAND_HTTP_PORT", "abc"}},
		{name: "missing config file", args: []string{"--config", filepath.Join(dir, "missing.yaml")}, want: []string{"config file", "missing.yaml"}},
		{name: "unknown flag", args: []string{"--htp-port", "80"}, want: []string{"htp-port"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if tc.file != "" {
				sub := filepath.Join(dir, string(rune('a'+i)))
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"--config", writeFile(t, sub, "stagehand.yaml", tc.file)}, args...)
			}
			fs, _ := newServeFlags()
			err := parseFlags(fs, args)
			if err == nil {
				t.Fatal("parseFlags accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"dhcp-mode": "STAGEHAND_DHCP_MODE", "http-port": "STAGEHAND_HTTP_PORT", "token": "STAGEHAND_TOKEN", "data-dir": "STAGEHAND_DATA_DIR",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end string // "" for an error
	}{
		{"10.0.0.100-10.0.0.199", "10.0.0.100", "10.0.0.199"},
		{" 10.0.0.100 - 10.0.0.199 ", "10.0.0.100", "10.0.0.199"},
		{"10.0.0.5-10.0.0.5", "10.0.0.5", "10.0.0.5"},
		{"192.168.1.250-192.168.2.10", "192.168.1.250", "192.168.2.10"},
		{"10.0.0.199-10.0.0.100", "", ""},
		{"10.0.0.100", "", ""},
		{"10.0.0.100-", "", ""},
		{"-10.0.0.100", "", ""},
		{"10.0.0.100-10.0.0.300", "", ""},
		{"fd00::1-fd00::9", "", ""},
		{"10.0.0.1-fd00::9", "", ""},
		{"10.0.0.0/24", "", ""},
		{"10.0.0.100-10.0.0.199/31", "", ""},
		{"10.0.0.100-10.0.0.199/x", "", ""},
		{"router=10.0.0.1", "", ""},
		{"10.0.0.100-10.0.0.199/24,gateway=10.0.0.1", "", ""},
		{"10.0.0.100-10.0.0.199/24,router=10.0.0.1,router=10.0.0.2", "", ""},
		{"10.0.0.100-10.0.0.199/24,dns=name", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			rs, err := parseRanges(tc.in)
			if tc.start == "" {
				if err == nil || !strings.Contains(err.Error(), "--dhcp-range") {
					t.Fatalf("parseRanges(%q) = %+v, %v; want a --dhcp-range error", tc.in, rs, err)
				}
				return
			}
			if err != nil || len(rs) != 1 || rs[0].start != netip.MustParseAddr(tc.start) || rs[0].end != netip.MustParseAddr(tc.end) {
				t.Fatalf("parseRanges(%q) = %+v, %v", tc.in, rs, err)
			}
		})
	}
}

// --dhcp-range repeated on the command line, as one environment value,
// and as a YAML list or a single string give the same ranges: local ones
// take --dhcp-router and --dhcp-dns and the interface's prefix, relayed
// ones their own keys.
func TestDHCPRangeSources(t *testing.T) {
	const (
		local = "10.77.1.100-10.77.1.199"
		bench = "10.77.2.100-10.77.2.199/24,router=10.77.2.1,dns=10.77.2.53,dns=9.9.9.9"
	)
	want := []dhcp.Range{
		{Start: netip.MustParseAddr("10.77.1.100"), End: netip.MustParseAddr("10.77.1.199"), Subnet: netip.MustParsePrefix("10.77.1.0/24"),
			Router: netip.MustParseAddr("10.77.1.1"), DNS: []netip.Addr{netip.MustParseAddr("10.77.1.53")}},
		{Start: netip.MustParseAddr("10.77.2.100"), End: netip.MustParseAddr("10.77.2.199"), Subnet: netip.MustParsePrefix("10.77.2.0/24"),
			Router: netip.MustParseAddr("10.77.2.1"), DNS: []netip.Addr{netip.MustParseAddr("10.77.2.53"), netip.MustParseAddr("9.9.9.9")}},
	}
	dir := t.TempDir()
	sources := []struct {
		name string
		args []string
		env  string
	}{
		{"flags", []string{"--dhcp-range", local, "--dhcp-range", bench}, ""},
		{"env", nil, local + "," + bench},
		{"yaml list", []string{"--config", writeFile(t, dir, "list.yaml", "dhcp-range:\n  - "+local+"\n  - "+bench+"\n")}, ""},
		{"yaml string", []string{"--config", writeFile(t, dir, "one.yaml", "dhcp-range: "+local+","+bench+"\n")}, ""},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			if src.env != "" {
				t.Setenv("STAGEHAND_DHCP_RANGE", src.env)
			}
			fs, o := newServeFlags()
			if err := parseFlags(fs, src.args); err != nil {
				t.Fatal(err)
			}
			got, err := dhcpRanges(o.dhcpRanges, netip.MustParsePrefix("10.77.1.2/24"), netip.MustParseAddr("10.77.1.1"),
				[]netip.Addr{netip.MustParseAddr("10.77.1.53")})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || !slices.Equal(got[1].DNS, want[1].DNS) || got[0].Router != want[0].Router || got[1].Router != want[1].Router {
				t.Errorf("ranges = %+v, want %+v", got, want)
			}
		})
	}
}

// A range the server cannot serve is refused before anything binds,
// naming the --dhcp-range as given and why.
func TestDHCPRangeRefused(t *testing.T) {
	local := netip.MustParsePrefix("10.77.1.2/24")
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"10.77.2.100-10.77.2.199"}, `--dhcp-range "10.77.2.100-10.77.2.199": outside the interface's subnet 10.77.1.0/24; for a subnet behind a relay add /PREFIX,router=IP`},
		{[]string{"10.77.2.100-10.77.2.199/24"}, `--dhcp-range "10.77.2.100-10.77.2.199/24": a subnet behind a relay needs router=IP`},
		{[]string{"10.77.2.100-10.77.2.199/24,router=10.77.3.1"}, `--dhcp-range "10.77.2.100-10.77.2.199/24,router=10.77.3.1": router 10.77.3.1 outside the subnet`},
		{[]string{"10.77.2.100-10.77.3.10/24,router=10.77.2.1"}, "not inside its subnet 10.77.2.0/24"},
		{[]string{"10.77.2.0-10.77.2.10/24,router=10.77.2.1"}, "network or broadcast"},
		{[]string{"10.77.1.100-10.77.1.199", "10.77.1.150-10.77.1.160"}, `--dhcp-range "10.77.1.150-10.77.1.160": overlaps the range 10.77.1.100-10.77.1.199/24`},
		{[]string{"10.77.2.100-10.77.2.199/24,router=10.77.2.1", "10.77.2.200-10.77.2.210/24,router=10.77.2.254"}, "another router"},
		{[]string{"10.77.2.100-10.77.2.199/24,router=10.77.2.1", "10.77.3.100-10.77.3.199/16,router=10.77.3.1"}, "overlaps the subnet 10.77.2.0/24"},
		{[]string{"10.77.1.1-10.77.1.50"}, "the server's own address"},
		{nil, "--dhcp-range: full mode needs at least one"},
	}
	if _, err := dhcpRanges(rangeFlag{{text: "10.77.1.100-10.77.1.199", start: netip.MustParseAddr("10.77.1.100"), end: netip.MustParseAddr("10.77.1.199")}},
		local, netip.MustParseAddr("10.99.0.1"), nil); err == nil ||
		!strings.Contains(err.Error(), `--dhcp-range "10.77.1.100-10.77.1.199" (router from --dhcp-router 10.99.0.1): router 10.99.0.1 outside the subnet`) {
		t.Errorf("--dhcp-router off the subnet: %v", err)
	}
	for _, tt := range tests {
		var f rangeFlag
		for _, s := range tt.in {
			if err := f.Set(s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dhcpRanges(f, local, netip.Addr{}, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want %q", tt.in, err, tt.want)
		}
	}
}

func TestResolveAddr(t *testing.T) {
	tests := []struct {
		listen, iface string
		addr, ifname  string // addr "": error containing errSub
		errSub        string
	}{
		{"127.0.0.1", "", "127.0.0.1", "lo", ""},
		{"", "lo", "127.0.0.1", "lo", ""},
		{"127.0.0.1", "lo", "127.0.0.1", "lo", ""},
		{"192.0.2.77", "", "", "", "not assigned to any interface"},
		{"::1", "", "", "", "not an IPv4 address"},
		{"localhost", "", "", "", "not an IPv4 address"},
		{"", "", "", "", "give --listen-address or --interface"},
		{"", "nosuchif0", "", "", "--interface nosuchif0"},
	}
	for _, tc := range tests {
		t.Run(tc.listen+"/"+tc.iface, func(t *testing.T) {
			a, ifc, err := resolveAddr(tc.listen, tc.iface)
			if tc.addr == "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("resolveAddr = %v, %q, %v; want error %q", a, ifc, err, tc.errSub)
				}
				return
			}
			if err != nil || a.String() != tc.addr || ifc != tc.ifname {
				t.Fatalf("resolveAddr = %v, %q, %v; want %s on %s", a, ifc, err, tc.addr, tc.ifname)
			}
		})
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := loadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || strings.ContainsAny(tok, "+/= \n") {
		t.Fatalf("token %q: want 32 random bytes, unpadded base64url", tok)
	}
	path := filepath.Join(dir, tokenFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if string(raw) != tok+"\n" {
		t.Fatalf("file holds %q", raw)
	}

	again, err := loadToken(dir)
	if err != nil || again != tok {
		t.Fatalf("second start: %q, %v; want the same token", again, err)
	}
	if other, _ := loadToken(t.TempDir()); other == tok {
		t.Fatal("two data dirs got the same token")
	}

	// An operator-written token with surrounding whitespace is trimmed.
	d2 := t.TempDir()
	writeFile(t, d2, tokenFile, "  hand-written-token \n")
	if got, err := loadToken(d2); err != nil || got != "hand-written-token" {
		t.Fatalf("hand-written token: %q, %v", got, err)
	}

	d3 := t.TempDir()
	writeFile(t, d3, tokenFile, "\n")
	if _, err := loadToken(d3); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty token file: %v", err)
	}
	if _, err := loadToken(filepath.Join(dir, "no", "such")); err == nil {
		t.Fatal("missing data dir accepted")
	}
}

// The shipped example config parses: every key is a serve flag, and its
// values take effect; uncommenting the TFTP and HTTP bounds works too.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../../examples/stagehand.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs, o := newServeFlags()
	if err := parseFlags(fs, []string{"--config", "../../examples/stagehand.yaml"}); err != nil {
		t.Fatalf("examples/stagehand.yaml: %v", err)
	}
	if o.iface != "eth1" || o.dhcpMode != "proxy" || o.logFormat != "json" || o.tftpPerClient != defaultTFTPPerClient {
		t.Errorf("example config gave %+v", *o)
	}
	uncommented := strings.NewReplacer("# tftp-max-transfers: 512", "tftp-max-transfers: 100",
		"# tftp-max-per-client: 8", "tftp-max-per-client: 2", "# tftp-max-idle: 30s", "tftp-max-idle: 45s",
		"# http-max-conns: 4096", "http-max-conns: 100", "# http-max-conns-per-address: 64", "http-max-conns-per-address: 0",
		"# http-idle-timeout: 5s", "http-idle-timeout: 3s",
		"# tftp-max-pending: 128", "tftp-max-pending: 16", "# tftp-pending-timeout: 2s", "tftp-pending-timeout: 3s").Replace(string(raw))
	cfg := writeFile(t, t.TempDir(), "stagehand.yaml", uncommented)
	fs, o = newServeFlags()
	if err := parseFlags(fs, []string{"--config", cfg}); err != nil {
		t.Fatal(err)
	}
	if o.tftpMaxTransfers != 100 || o.tftpPerClient != 2 || o.tftpMaxIdle != 45*time.Second || o.tftpMaxPending != 16 ||
		o.tftpPendingTimeout != 3*time.Second || o.checkTFTP() != nil {
		t.Errorf("uncommented TFTP bounds gave %d, %d, %v, %d, %v", o.tftpMaxTransfers, o.tftpPerClient, o.tftpMaxIdle, o.tftpMaxPending, o.tftpPendingTimeout)
	}
	if o.httpMaxConns != 100 || o.httpPerAddress != 0 || o.httpIdleTimeout != 3*time.Second || o.checkHTTP() != nil {
		t.Errorf("uncommented HTTP bounds gave %d, %d, %v", o.httpMaxConns, o.httpPerAddress, o.httpIdleTimeout)
	}
}
