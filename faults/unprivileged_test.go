package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// nobody is the unprivileged user the server runs as here, as systemd's
// DynamicUser would run it.
const nobody = 65534

// privLab is the real binary copied where any user can run it, an
// iPXE dir and a data dir the unprivileged user can use, and a network
// namespace with a client namespace on its bridge.
type privLab struct {
	t                     *testing.T
	net                   *lab.Net
	cliNS                 string
	bin, ipxeDir, dataDir string
	kpxe                  []byte
}

func newPrivLab(t *testing.T) *privLab {
	t.Helper()
	root, err := os.MkdirTemp("/var/tmp", "sh-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	p := &privLab{t: t, bin: filepath.Join(root, "stagehand"), ipxeDir: filepath.Join(root, "ipxe"), dataDir: filepath.Join(root, "data")}
	// MkdirTemp makes 0700; the server's user must reach the binary.
	must(t, os.Chmod(root, 0o755))
	b, err := os.ReadFile(binary)
	must(t, err)
	must(t, os.WriteFile(p.bin, b, 0o755))
	must(t, os.Mkdir(p.ipxeDir, 0o755))
	p.kpxe = bytes.Repeat([]byte("undionly "), 9000)
	must(t, os.WriteFile(filepath.Join(p.ipxeDir, "undionly.kpxe"), p.kpxe, 0o644))
	must(t, os.WriteFile(filepath.Join(p.ipxeDir, "snponly.efi"), []byte("ipxe snponly.efi"), 0o644))
	must(t, os.Mkdir(p.dataDir, 0o700))
	must(t, os.Chown(p.dataDir, nobody, nobody))
	p.net = lab.NewNet(t, "fpriv", "10.77.0.1/24")
	p.cliNS = p.net.AddPeer(t, "fpcli", "10.77.0.2/24")
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serveArgs is `setpriv ... stagehand serve` in full DHCP mode on the
// namespace's bridge, as user nobody with exactly caps (setpriv names,
// e.g. "net_admin"): no other capability is permitted, inheritable or in
// the bounding set.
func (p *privLab) serveArgs(caps ...string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	return []string{fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody), "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set, "--",
		p.bin, "serve", "--interface", p.net.Bridge, "--dhcp-mode", "full", "--dhcp-range", "10.77.0.100-10.77.0.150",
		"--unknown-hosts", "discover", "--data-dir", p.dataDir, "--ipxe-dir", p.ipxeDir, "--log-format", "json"}
}

// TestUnprivilegedServe runs the server as an unprivileged user with
// only the capabilities examples/stagehand.service grants, and shows what
// each is for: with CAP_NET_BIND_SERVICE alone it serves DHCP (its
// socket pinned to the bridge: SO_BINDTODEVICE on an unbound socket needs
// no privilege since Linux 5.7), TFTP and HTTP to real clients (busybox
// udhcpc, curl) and warns that its DHCP receive buffer is small; with
// CAP_NET_ADMIN too it does not warn; without CAP_NET_BIND_SERVICE it
// refuses to start with one line naming the capability.
func TestUnprivilegedServe(t *testing.T) {
	p := newPrivLab(t)

	// Bounded: a server that starts after all would otherwise hold
	// CombinedOutput until the test's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	out, err := p.net.Command(ctx, "setpriv", p.serveArgs("net_admin")...).CombinedOutput()
	timedOut := ctx.Err() != nil
	cancel()
	if err == nil || !strings.Contains(string(out), "CAP_NET_BIND_SERVICE") || timedOut {
		t.Errorf("without CAP_NET_BIND_SERVICE: %v, output %q; want a failure at start naming CAP_NET_BIND_SERVICE", err, out)
	}

	// Without CAP_NET_ADMIN the DHCP receive buffer is what
	// net.core.rmem_max allows (the kernel reports twice what was set).
	rmemMax, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	must(t, err)
	capped, err := strconv.Atoi(strings.TrimSpace(string(rmemMax)))
	must(t, err)
	const wanted = 4 << 20
	for _, tc := range []struct {
		name string
		caps []string
		rb   int // the DHCP socket's receive buffer as ss reports it
	}{
		{"bind", []string{"net_bind_service"}, 2 * min(capped, wanted)},
		{"bind+admin", []string{"net_bind_service", "net_admin"}, 2 * wanted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// lab.Start stops it (by PID) and shows its log if the test failed.
			srv := lab.Start(t, p.net.NS, "setpriv", p.serveArgs(tc.caps...)...)
			defer srv.Stop()
			if !srv.WaitOutput("stagehand serving", 15*time.Second) {
				t.Fatal("server not serving after 15 s")
			}

			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.Pid()))
			must(t, err)
			wantEff := map[bool]string{true: "0000000000001400", false: "0000000000000400"}[len(tc.caps) == 2]
			if !strings.Contains(string(status), fmt.Sprintf("Uid:\t%d\t%d", nobody, nobody)) || !strings.Contains(string(status), "CapEff:\t"+wantEff) {
				t.Fatalf("server is not unprivileged as asked (want CapEff %s):\n%s", wantEff, status)
			}

			// DHCP: busybox udhcpc as a PXE client gets an address.
			udhcpc := exec.Command("ip", "netns", "exec", p.cliNS, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n",
				"-t", "5", "-T", "1", "-s", "/bin/true", "-V", "PXEClient:Arch:00000:UNDI:002001")
			if out, err := udhcpc.CombinedOutput(); err != nil || !strings.Contains(string(out), "10.77.0.1") {
				t.Errorf("udhcpc: %v\n%s", err, out)
			}
			// TFTP on 69 and HTTP, from the client namespace.
			kpxe := filepath.Join(t.TempDir(), "undionly.kpxe")
			if out, err := exec.Command("ip", "netns", "exec", p.cliNS, "curl", "-sS", "--max-time", "20", "-o", kpxe,
				"tftp://10.77.0.1/undionly.kpxe").CombinedOutput(); err != nil {
				t.Errorf("curl tftp: %v\n%s", err, out)
			} else if got, _ := os.ReadFile(kpxe); !bytes.Equal(got, p.kpxe) {
				t.Errorf("TFTP: %d bytes, want %d, byte-exact", len(got), len(p.kpxe))
			}
			if out, err := exec.Command("ip", "netns", "exec", p.cliNS, "curl", "-sS", "--max-time", "10",
				"http://10.77.0.1:8080/healthz").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Errorf("HTTP /healthz: %v %q", err, out)
			}
			ss, err := exec.Command("ip", "netns", "exec", p.net.NS, "ss", "-Hulmn", "sport = :67").CombinedOutput()
			must(t, err)
			m := regexp.MustCompile(`rb(\d+)`).FindSubmatch(ss)
			if m == nil || string(m[1]) != strconv.Itoa(tc.rb) {
				t.Errorf("DHCP socket: %q, want receive buffer rb%d", ss, tc.rb)
			}
			// The warning is given exactly when the buffer came out short.
			if warned, short := strings.Contains(srv.Output(), "DHCP receive buffer is small"), tc.rb < wanted; warned != short {
				t.Errorf("receive-buffer warning given: %v, want %v (net.core.rmem_max %d)", warned, short, capped)
			}
		})
	}
}

// TestServiceUnitVerifies checks examples/stagehand.service with
// systemd-analyze: every key is one systemd knows (it warns, rather than
// fails, on a misspelt one, so any output is a failure), and the unit
// grants the capabilities TestUnprivilegedServe needs.
func TestServiceUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("../examples/stagehand.service")
	must(t, err)
	for _, c := range []string{"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"} {
		for _, key := range []string{"AmbientCapabilities=", "CapabilityBoundingSet="} {
			if !strings.Contains(string(unit), key) || !strings.Contains(lineOf(string(unit), key), c) {
				t.Errorf("%s does not grant %s", key, c)
			}
		}
	}
	// verify checks that ExecStart's binary exists: point it at ours.
	// The socket units are verified with the service they trigger.
	dir := t.TempDir()
	path := filepath.Join(dir, "stagehand.service")
	must(t, os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/stagehand"), []byte(binary)), 0o644))
	var sockets []string
	for _, name := range []string{"stagehand.socket", "stagehand-dhcp.socket"} {
		b, err := os.ReadFile("../examples/" + name)
		must(t, err)
		sockets = append(sockets, filepath.Join(dir, name))
		must(t, os.WriteFile(sockets[len(sockets)-1], b, 0o644))
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", path}, sockets...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// And it would say so: a misspelt key is reported, in the service
	// and in a socket unit.
	must(t, os.WriteFile(path, append(bytes.ReplaceAll(unit, []byte("/usr/local/bin/stagehand"), []byte(binary)), "NoNewPrivilege=yes\n"...), 0o644))
	if out, _ := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); !bytes.Contains(out, []byte("NoNewPrivilege")) {
		t.Errorf("systemd-analyze verify did not report a misspelt key: %q", out)
	}
	b, err := os.ReadFile(sockets[1])
	must(t, err)
	must(t, os.WriteFile(sockets[1], append(b, "BindToDevices=eth1\n"...), 0o644))
	if out, _ := exec.Command("systemd-analyze", "verify", sockets[1]).CombinedOutput(); !bytes.Contains(out, []byte("BindToDevices")) {
		t.Errorf("systemd-analyze verify did not report a misspelt key in a socket unit: %q", out)
	}
}

// TestSocketUnitPorts: the example socket unit opens the ports the
// example config names, since serve refuses an inherited socket on
// another port than --http-port or --tftp-port.
func TestSocketUnitPorts(t *testing.T) {
	unit, err := os.ReadFile("../examples/stagehand.socket")
	must(t, err)
	conf, err := os.ReadFile("../examples/stagehand.yaml")
	must(t, err)
	for _, c := range []struct{ unitKey, confKey string }{{"ListenStream=", "http-port:"}, {"ListenDatagram=", "tftp-port:"}} {
		listen := lineOf(string(unit), c.unitKey)
		port := ""
		if f := strings.Fields(strings.TrimPrefix(lineOf(string(conf), c.confKey), c.confKey)); len(f) > 0 {
			port = f[0]
		}
		if listen == "" || port == "" || !strings.HasSuffix(listen, ":"+port) {
			t.Errorf("examples/stagehand.socket has %q, examples/stagehand.yaml %s %q", listen, c.confKey, port)
		}
	}
}

// lineOf returns the line of s that starts with prefix.
func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
