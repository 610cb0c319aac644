package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

const cliToken = "cli-test-token"

// cliServer runs the real operator API on loopback over a store in
// t.TempDir(), as `stagehand serve` would, without DHCP or TFTP.
func cliServer(t *testing.T) (string, *inventory.Store) {
	t.Helper()
	st, err := inventory.Open(t.TempDir(), inventory.Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{
		Store: st, Base: "http://127.0.0.1:1", Token: cliToken,
		Log: zerolog.New(zerolog.NewTestWriter(t)),
	}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return srv.URL, st
}

// cli runs one stagehand command and returns its output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, args, &out)
	return out.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(t, args...)
	if err != nil {
		t.Fatalf("stagehand %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// row finds the table row that starts with key and splits it into columns.
func row(t *testing.T, out, key string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, key) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("no row %q in:\n%s", key, out)
	return nil
}

func TestCLIEndToEnd(t *testing.T) {
	url, st := cliServer(t)
	conn := []string{"--server", url, "--token", cliToken}
	with := func(args ...string) []string { return append(args, conn...) }

	// Relative artifact paths are made absolute on the client side.
	dir := t.TempDir()
	writeFile(t, dir, "vmlinuz", "kernel")
	writeFile(t, dir, "initrd", "initrd")
	ud := writeFile(t, dir, "base.yaml", "stylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n")
	t.Chdir(dir)

	out := mustCLI(t, with("profile", "add", "edge", "--kernel", "vmlinuz", "--initrd", "initrd",
		"--cmdline", "console=ttyS0", "--userdata", ud, "--local-boot", "sanboot")...)
	// NAME KERNEL INITRD ROOTFS LOCAL-BOOT TIMEOUT CMDLINE
	if r := row(t, out, "edge"); len(r) != 7 || r[1] != filepath.Join(dir, "vmlinuz") || r[3] != "-" || r[4] != "sanboot" || r[5] != "1h0m0s" || r[6] != "console=ttyS0" {
		t.Fatalf("profile add printed:\n%s", out)
	}
	p, err := st.Profile("edge")
	if err != nil || p.Initrd != filepath.Join(dir, "initrd") || !strings.Contains(p.UserData, "paletteEndpoint") {
		t.Fatalf("stored profile = %+v, %v", p, err)
	}
	if out := mustCLI(t, with("profile", "list")...); !strings.HasPrefix(out, "NAME") || row(t, out, "edge")[0] != "edge" {
		t.Fatalf("profile list:\n%s", out)
	}

	// The documented order: positional MAC first, flags after.
	site := writeFile(t, dir, "site.yaml", "edgeHostToken: SEKRET-cli-token\nnetwork:\n  type: static\n  ipAddress: 10.1.0.11\n  mask: 24\n  gateway: 10.1.0.1\n")
	out = mustCLI(t, with("host", "add", "52-54-00-CC-00-01", "--profile", "edge", "--name", "node1", "--serial", "SN1", "--site", site)...)
	if r := row(t, out, "52:54:00:cc:00:01"); r[1] != "node1" || r[2] != "edge" || r[3] != "ready" || r[4] != "0" || r[6] != "SN1" {
		t.Fatalf("host add printed:\n%s", out)
	}
	h, err := st.Host("52:54:00:cc:00:01")
	if err != nil || h.Site.Network == nil || h.Site.Network.Mask != "24" || h.Site.EdgeHostToken != "SEKRET-cli-token" {
		t.Fatalf("stored host = %+v, %v", h, err)
	}
	mustCLI(t, with("host", "add", "52:54:00:cc:00:02")...) // no profile: discovered

	out = mustCLI(t, with("host", "list")...)
	if !strings.HasPrefix(out, "MAC") || row(t, out, "52:54:00:cc:00:01")[3] != "ready" || row(t, out, "52:54:00:cc:00:02")[3] != "discovered" {
		t.Fatalf("host list:\n%s", out)
	}
	out = mustCLI(t, with("host", "list", "--state", "discovered")...)
	if strings.Contains(out, "52:54:00:cc:00:01") || !strings.Contains(out, "52:54:00:cc:00:02") {
		t.Fatalf("host list --state discovered:\n%s", out)
	}

	out = mustCLI(t, with("host", "show", "52:54:00:cc:00:01", "--output", "json")...)
	var shown map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("host show --output json: %v\n%s", err, out)
	}
	if shown["state"] != "ready" || shown["mac"] != "52:54:00:cc:00:01" || shown["name"] != "node1" {
		t.Fatalf("host show JSON: %s", out)
	}
	if _, ok := shown["tokenHash"]; ok {
		t.Fatal("host show exposes tokenHash")
	}

	// A ready host may be reprovisioned (it stays ready, the event says so);
	// a discovered one has nothing to reprovision.
	out = mustCLI(t, with("host", "reprovision", "52:54:00:cc:00:01")...)
	if row(t, out, "52:54:00:cc:00:01")[3] != "ready" {
		t.Fatalf("reprovision printed:\n%s", out)
	}
	ev, _ := st.Events("52:54:00:cc:00:01")
	if last := ev[len(ev)-1]; last.Kind != "reprovision" || last.Detail != "from ready" {
		t.Fatalf("last event %+v", last)
	}
	_, err = cli(t, with("host", "reprovision", "52:54:00:cc:00:02")...)
	if err == nil || !strings.Contains(err.Error(), "reprovision not allowed in state discovered") {
		t.Fatalf("reprovision of a discovered host: %v", err)
	}

	out = mustCLI(t, with("host", "events", "52:54:00:cc:00:01")...)
	if !strings.HasPrefix(out, "TIME") || !strings.Contains(out, "created") || !strings.Contains(out, "from ready") {
		t.Fatalf("host events:\n%s", out)
	}
	out = mustCLI(t, with("host", "userdata", "52:54:00:cc:00:01")...)
	if !strings.HasPrefix(out, "#cloud-config") || strings.Contains(out, "SEKRET-cli-token") || !strings.Contains(out, "********") {
		t.Fatalf("host userdata (masked):\n%s", out)
	}
	if out := mustCLI(t, with("host", "userdata", "52:54:00:cc:00:01", "--secrets")...); !strings.Contains(out, "SEKRET-cli-token") {
		t.Fatalf("host userdata --secrets:\n%s", out)
	}

	out = mustCLI(t, with("status")...)
	for _, re := range []string{`(?m)^ready\s+1$`, `(?m)^discovered\s+1$`, `(?m)^installed\s+0$`, `(?m)^total\s+2$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	var status api.Status
	if err := json.Unmarshal([]byte(mustCLI(t, with("status", "--output", "json")...)), &status); err != nil || status.Total != 2 || status.ByState["ready"] != 1 {
		t.Fatalf("status --output json: %+v, %v", status, err)
	}

	_, err = cli(t, with("profile", "delete", "edge")...)
	if err == nil || !strings.Contains(err.Error(), "used by 1 host") {
		t.Fatalf("deleting a profile in use: %v", err)
	}
	mustCLI(t, with("host", "delete", "52:54:00:cc:00:01")...)
	mustCLI(t, with("profile", "delete", "edge")...)
	if ps, _ := st.Profiles(); len(ps) != 0 {
		t.Fatalf("profiles left: %+v", ps)
	}
	if _, err := cli(t, with("host", "show", "52:54:00:cc:00:01")...); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("show deleted host: %v", err)
	}
}

func TestCLITokenSources(t *testing.T) {
	url, _ := cliServer(t)

	// From the environment, as STAGEHAND_SERVER and STAGEHAND_TOKEN.
	t.Setenv("STAGEHAND_SERVER", url)
	t.Setenv("STAGEHAND_TOKEN", cliToken)
	if out := mustCLI(t, "status"); !strings.Contains(out, "total") {
		t.Fatalf("status with env:\n%s", out)
	}

	// From the server's data dir, when no token is given.
	t.Setenv("STAGEHAND_TOKEN", "")
	os.Unsetenv("STAGEHAND_TOKEN")
	dataDir := t.TempDir()
	writeFile(t, dataDir, tokenFile, cliToken+"\n")
	if out := mustCLI(t, "host", "list", "--data-dir", dataDir); !strings.HasPrefix(out, "MAC") {
		t.Fatalf("host list with --data-dir:\n%s", out)
	}
	_, err := cli(t, "host", "list", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Fatalf("no token anywhere: %v", err)
	}
}

func TestCLIErrors(t *testing.T) {
	url, st := cliServer(t)

	_, err := cli(t, "status", "--server", url, "--token", "wrong")
	if err == nil || !strings.Contains(err.Error(), "missing or wrong bearer token") {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = cli(t, "host", "add", "52:54:00:cc:00:09", "--server", url, "--token", "wrong")
	if err == nil || !strings.Contains(err.Error(), "missing or wrong bearer token") {
		t.Fatalf("wrong token on a write: %v", err)
	}
	if hs, _ := st.Hosts(inventory.Filter{}); len(hs) != 0 {
		t.Fatalf("a write with a wrong token stored %+v", hs)
	}

	// A port nothing listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, err = cli(t, "status", "--server", dead, "--token", cliToken)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the stagehand server at "+dead) {
		t.Fatalf("unreachable server: %v", err)
	}

	conn := []string{"--server", url, "--token", cliToken}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"host", "add", "nope", "--profile", "x"}, `mac "nope" is not an Ethernet address`},
		{[]string{"host", "add", "52:54:00:cc:00:09", "--profile", "nope"}, `no profile named "nope"`},
		{[]string{"host", "show"}, "host show: want MAC, got 0 argument(s)"},
		{[]string{"host", "show", "a", "b"}, "got 2 argument(s)"},
		{[]string{"host", "list", "--output", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"host", "list", "--state", "bogus"}, `unknown state "bogus"`},
		{[]string{"host", "frobnicate"}, "host frobnicate: unknown"},
		{[]string{"profile", "add", "p", "--kernel", "/nonexistent/vmlinuz", "--initrd", "/nonexistent/initrd"}, "field kernel"},
		{[]string{"profile", "add", "p", "--userdata", "/nonexistent/base.yaml"}, "--userdata"},
		{[]string{"profile", "show", "nope"}, "not found"},
		{[]string{"host", "add", "52:54:00:cc:00:09", "--bogus-flag"}, "bogus-flag"},
	} {
		_, err := cli(t, append(tc.args, conn...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("stagehand %s: error %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"host"}, {"profile"}} {
		if _, err := cli(t, args...); err == nil {
			t.Errorf("stagehand %v: no error", args)
		}
	}
	if out := mustCLI(t, "help"); !strings.Contains(out, "host") || !strings.Contains(out, "Available Commands") {
		t.Fatalf("help:\n%s", out)
	}
}

// -h on a group or a command prints its usage (subcommands, flags,
// global flags) to standard output and succeeds, and needs no token or
// server: with neither, a command would fail on the token first.
func TestCLIHelp(t *testing.T) {
	t.Setenv("STAGEHAND_TOKEN", "")
	noDir := []string{"--data-dir", t.TempDir()}
	for _, tc := range []struct {
		args    []string
		want    []string
		wantNot string
	}{
		{args: []string{"host", "-h"}, want: []string{"import", "cidata", "stagehand host [command]"}, wantNot: "stagehand profile"},
		{args: []string{"host", "help"}, want: []string{"list"}},
		{args: []string{"profile", "--help"}, want: []string{"add", "update"}, wantNot: "stagehand host"},
		{args: append([]string{"host", "list", "-h"}, noDir...), want: []string{"stagehand host list [--state S]", "--stalled", "--token string"}, wantNot: "stagehand host add"},
		{args: []string{"host", "import", "--help"}, want: []string{"stagehand host import FILE.csv", "Flags:"}},
		{args: []string{"profile", "show", "-h"}, want: []string{"stagehand profile show NAME"}},
		{args: []string{"status", "-h"}, want: []string{"stagehand status", "-o, --output string"}},
		{args: []string{"host", "add", "-h"}, want: []string{"--gateway", "--edge-host-token", "--site"}},
		{args: []string{"-h"}, want: []string{"completion", "version", "watch"}},
	} {
		out, err := cli(t, tc.args...)
		if err != nil {
			t.Errorf("stagehand %s: %v", strings.Join(tc.args, " "), err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("stagehand %s: no %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
		if tc.wantNot != "" && strings.Contains(out, tc.wantNot) {
			t.Errorf("stagehand %s: %q should not be in\n%s", strings.Join(tc.args, " "), tc.wantNot, out)
		}
	}
}
