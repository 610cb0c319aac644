package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/server"
)

// fakeIPXEDir holds empty files with the binaries' names: runServe only
// checks that they exist.
func fakeIPXEDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, ipxe.FileBIOS, "")
	writeFile(t, dir, ipxe.FileEFISNPOnly, "")
	return dir
}

func TestServeMissingIPXE(t *testing.T) {
	empty := t.TempDir()
	err := runServe(t.Context(), []string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off",
		"--ipxe-dir", empty, "--data-dir", t.TempDir(), "--log-level", "error"})
	if err == nil {
		t.Fatal("runServe started without iPXE binaries")
	}
	for _, want := range []string{filepath.Join(empty, "undionly.kpxe"), filepath.Join(empty, "snponly.efi"), `Debian package "ipxe"`, "apt-get install ipxe"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// --efi-binary ipxe.efi asks for that file instead.
	dir := t.TempDir()
	writeFile(t, dir, ipxe.FileBIOS, "")
	err = runServe(t.Context(), []string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off",
		"--ipxe-dir", dir, "--efi-binary", "ipxe.efi", "--data-dir", t.TempDir(), "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "ipxe.efi is missing") || strings.Contains(err.Error(), "undionly") {
		t.Fatalf("--efi-binary ipxe.efi: %v", err)
	}
}

func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	data := t.TempDir()

	err = runServe(t.Context(), []string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off",
		"--http-port", fmt.Sprint(port), "--tftp-port", "0",
		"--ipxe-dir", fakeIPXEDir(t), "--data-dir", data, "--log-level", "error"})
	want := fmt.Sprintf("HTTP port %d on 127.0.0.1 is already in use", port)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("runServe: %v; want %q", err, want)
	}
	// Nothing half-started: the data dir is free for the next attempt.
	st, err := inventory.Open(data, inventory.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("data dir still held after the failed start: %v", err)
	}
	st.Close()
}

// TestMACBindingFlag: --mac-binding is strict unless told otherwise, and,
// like every serve flag, comes from the environment or the YAML file.
func TestMACBindingFlag(t *testing.T) {
	fs, o := newServeFlags()
	if err := parseFlags(fs, nil); err != nil || o.macBinding != "strict" {
		t.Fatalf("default --mac-binding %q (%v), want strict", o.macBinding, err)
	}
	t.Setenv("STAGEHAND_MAC_BINDING", "off")
	fs, o = newServeFlags()
	if err := parseFlags(fs, nil); err != nil || o.macBinding != "off" {
		t.Fatalf("STAGEHAND_MAC_BINDING=off gave %q (%v)", o.macBinding, err)
	}
	os.Unsetenv("STAGEHAND_MAC_BINDING")
	cfg := writeFile(t, t.TempDir(), "stagehand.yaml", "mac-binding: \"off\"\n")
	fs, o = newServeFlags()
	if err := parseFlags(fs, []string{"--config", cfg}); err != nil || o.macBinding != "off" {
		t.Fatalf("mac-binding: off in the config file gave %q (%v)", o.macBinding, err)
	}
	if b, err := api.ParseMACBinding(o.macBinding); err != nil || b != api.MACBindingOff {
		t.Fatalf("ParseMACBinding(%q) = %v, %v", o.macBinding, b, err)
	}
}

func TestServeFlagErrors(t *testing.T) {
	ipxeDir := fakeIPXEDir(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dhcp-mode", "relay"}, `--dhcp-mode "relay"`},
		{[]string{"--efi-binary", "grub.efi"}, `--efi-binary "grub.efi"`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"--unknown-hosts", "nosuchprofile"}, `--unknown-hosts "nosuchprofile"`},
		{[]string{"--listen-address", "192.0.2.77"}, "not assigned to any interface"},
		{[]string{"--tftp-max-transfers", "0"}, "--tftp-max-transfers 0: want at least 1"},
		{[]string{"--tftp-max-per-client", "-1"}, "--tftp-max-per-client -1: want 0 (no cap) or more"},
		{[]string{"--tftp-max-idle", "2s"}, "--tftp-max-idle 2s: want at least 5s"},
		{[]string{"--tftp-max-pending", "0"}, "--tftp-max-pending 0: want at least 1"},
		{[]string{"--tftp-pending-timeout", "500ms"}, "--tftp-pending-timeout 500ms: want 1s to --tftp-max-idle (30s)"},
		{[]string{"--tftp-pending-timeout", "40s"}, "--tftp-pending-timeout 40s: want 1s to --tftp-max-idle (30s)"},
		{[]string{"--http-port", "0"}, "--http-port 0: want 1-65535"},
		{[]string{"--http-max-conns", "-1"}, "--http-max-conns -1: want 0 (no cap) or more"},
		{[]string{"--http-max-conns-per-address", "-1"}, "--http-max-conns-per-address -1: want 0 (no cap) or more"},
		{[]string{"--http-idle-timeout", "500ms"}, "--http-idle-timeout 500ms: want at least 1s"},
		{[]string{"--mac-binding", "loose"}, `--mac-binding "loose": want strict or off`},
	} {
		args := append([]string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off", "--http-port", "8080", "--tftp-port", "0",
			"--ipxe-dir", ipxeDir, "--data-dir", t.TempDir(), "--log-level", "error"}, tc.args...)
		err := runServe(t.Context(), args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v; want %q", tc.args, err, tc.want)
		}
	}
}

// TestServeStartStop runs the real server (DHCP off) on loopback, on
// sockets the test opened, talks to it with its generated token, and
// stops it by cancelling the context.
func TestServeStartStop(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// As a service manager passes them: no --http-port, the socket's
	// port is the one in the URLs.
	given := server.Inherited{HTTP: ln, TFTP: tc}

	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ipxeDir := fakeIPXEDir(t)
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		done <- serve(ctx, []string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off",
			"--ipxe-dir", ipxeDir, "--data-dir", data, "--log-level", "error"}, given)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})

	// The listener is open before the server starts: the first request
	// waits in its backlog, no polling for the port.
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	res.Body.Close()

	tok, err := os.ReadFile(filepath.Join(data, tokenFile))
	if err != nil {
		t.Fatalf("no token written: %v", err)
	}
	out := mustCLI(t, "status", "--server", base, "--data-dir", data)
	if !strings.Contains(out, "total") {
		t.Fatalf("status against the real server:\n%s", out)
	}
	res, err = http.Get(base + "/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), "chain --autofree "+base+"/ipxe?mac=") {
		t.Fatalf("stage 1 from the real server:\n%s", b)
	}
	if strings.Contains(string(b), strings.TrimSpace(string(tok))) {
		t.Fatal("the operator token is in a machine script")
	}
	// MAC binding is strict by default: no DHCP ran (--dhcp-mode off) and
	// loopback has no neighbour entries, so nothing ties a host's MAC to
	// this client, and stage 2 for it is refused.
	mustCLI(t, "host", "add", "52:54:00:5e:00:01", "--server", base, "--data-dir", data)
	res, err = http.Get(base + "/ipxe?mac=52:54:00:5e:00:01")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || string(b) != "Forbidden\n" {
		t.Fatalf("stage 2 for a known MAC from a client nothing ties to it: %d\n%s", res.StatusCode, b)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after serve returned")
	}
	// Run owned the sockets: both are closed, the store too.
	if _, err := tc.WriteTo([]byte("x"), tc.LocalAddr()); err == nil {
		t.Fatal("the TFTP socket is still open after serve returned")
	}
	st, err := inventory.Open(data, inventory.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("data dir still held after serve returned: %v", err)
	}
	st.Close()
}

// TestServeLateCheckFreesPorts: a serve that fails a check which used
// to run after the HTTP and TFTP ports were bound (a bad --dhcp-range)
// binds nothing, and closes the sockets it was given: their ports are
// free again, and the data dir too.
func TestServeLateCheckFreesPorts(t *testing.T) {
	for _, bad := range [][]string{
		{"--dhcp-mode", "full", "--dhcp-range", "10.0.0.9-10.0.0.1"},
		{"--dhcp-mode", "full", "--dhcp-range", "10.77.2.100-10.77.2.199"},
		{"--dhcp-mode", "full", "--dhcp-range", "127.0.0.100-127.0.0.120", "--dhcp-range", "10.77.2.100-10.77.2.199/24,router=10.77.3.1"},
		{"--dhcp-mode", "full", "--dhcp-range", "127.0.0.100-127.0.0.120", "--dhcp-router", "router"},
		{"--dhcp-mode", "full", "--dhcp-range", "127.0.0.100-127.0.0.120", "--dhcp-unknown-share", "0"},
		{"--unknown-hosts", "nosuchprofile"},
		{"--dhcp-trusted-relays", "10.0.0.0/8,relay"},
		{"--dhcp-trusted-relays", "fe80::1"},
		{"--ipv6-ra", "on"},
	} {
		in, httpAddr, tftpAddr := givenSockets(t)
		data := t.TempDir()
		args := append([]string{"--listen-address", "127.0.0.1", "--ipxe-dir", fakeIPXEDir(t), "--data-dir", data, "--log-level", "error"}, bad...)
		if err := serve(t.Context(), args, in); err == nil {
			t.Fatalf("serve %v started", bad)
		}
		ln, err := net.Listen("tcp4", httpAddr)
		if err != nil {
			t.Fatalf("after serve %v failed, the HTTP port is still held: %v", bad, err)
		}
		ln.Close()
		pc, err := net.ListenPacket("udp4", tftpAddr)
		if err != nil {
			t.Fatalf("after serve %v failed, the TFTP port is still held: %v", bad, err)
		}
		pc.Close()
		st, err := inventory.Open(data, inventory.Options{LockTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("after serve %v failed, the data dir is still held: %v", bad, err)
		}
		st.Close()
	}
}

// givenSockets opens HTTP and TFTP sockets on loopback, as a service
// manager would before starting serve, and returns their addresses.
func givenSockets(t *testing.T) (server.Inherited, string, string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return server.Inherited{HTTP: ln, TFTP: pc}, ln.Addr().String(), pc.LocalAddr().String()
}

// TestServeInheritedPorts: a --http-port or --tftp-port (flag,
// environment or config file) that names another port than the socket
// passed is refused before anything starts, and the sockets are closed.
func TestServeInheritedPorts(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--http-port", "8080"}, nil, "--http-port 8080, but the socket passed by socket activation is on port"},
		{[]string{"--tftp-port", "69"}, nil, "--tftp-port 69, but the socket passed by socket activation is on port"},
		{nil, map[string]string{"STAGEHAND_HTTP_PORT": "8081"}, "--http-port 8081, but"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		in, httpAddr, _ := givenSockets(t)
		args := append([]string{"--listen-address", "127.0.0.1", "--dhcp-mode", "off", "--ipxe-dir", fakeIPXEDir(t), "--data-dir", t.TempDir(), "--log-level", "error"}, c.args...)
		if err := serve(t.Context(), args, in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v %v: %v; want %q", c.args, c.env, err, c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
		ln, err := net.Listen("tcp4", httpAddr)
		if err != nil {
			t.Fatalf("serve %v %v: the passed HTTP socket is still open: %v", c.args, c.env, err)
		}
		ln.Close()
	}
}
