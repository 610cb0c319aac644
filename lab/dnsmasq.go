package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dnsmasq is a dnsmasq process started by RunDnsmasqSite.
type Dnsmasq struct {
	LogPath   string // dnsmasq's log (--log-dhcp)
	LeasePath string

	proc *Process
}

// RunDnsmasqSite starts dnsmasq in namespace ns as a plain DHCP server on
// iface handing out rangeStart–rangeEnd: the "site DHCP server" that
// stagehand's proxyDHCP sits beside, or simply the DHCP server of a test
// that boots the stand-in directly. No DNS (--port=0), no TFTP, no PXE.
// extra dnsmasq options are appended (e.g. --dhcp-boot=URL to hand iPXE a
// script without stagehand).
// It returns once dnsmasq has announced its DHCP range; cleanup kills it
// by PID and logs its log's tail if the test failed.
func RunDnsmasqSite(t testing.TB, ns, iface, rangeStart, rangeEnd string, extra ...string) *Dnsmasq {
	t.Helper()
	args := []string{
		"--interface=" + iface,
		"--dhcp-range=" + rangeStart + "," + rangeEnd + ",1h",
		"--dhcp-authoritative",
		// dnsmasq pings an address before offering it: 3 s per boot
		// (docs/LAB.md pitfall 4).
		"--no-ping",
		"--log-dhcp",
	}
	return startDnsmasq(t, ns, "DHCP, IP range", append(args, extra...))
}

// RunRA adds a host to n (a peer namespace, see AddPeer) that sends IPv6
// router advertisements without the managed/other flags and answers
// nothing else. iPXE waits about 16 s for an RA before it runs its script
// (docs/LAB.md pitfall 3); with RunRA on the bridge it goes on as soon as
// one arrives. For the lab's own boots without stagehand only: stagehand
// answers itself. The prefix is fd00:5a6::/64, the host fd00:5a6::2.
func RunRA(t testing.TB, n *Net) *Dnsmasq {
	t.Helper()
	// Router lifetime 0: not a default router.
	return runAdvertiser(t, n, "ra", "fd00:5a6::2/64", 0)
}

// RunIPv6Router adds a site's IPv6 router to n (a peer namespace): dnsmasq
// advertising the prefix fd00:5a7::/64 with a router lifetime of 30
// minutes, as a real router does, and answering solicitations. The
// router is fd00:5a7::1. stagehand must leave such a link to it.
func RunIPv6Router(t testing.TB, n *Net) *Dnsmasq {
	t.Helper()
	return runAdvertiser(t, n, "rtr6", "fd00:5a7::1/64", 1800)
}

// runAdvertiser is a peer named name with address cidr on eth0 running
// dnsmasq's router advertisements for cidr's prefix, every 10 s, with
// the given router lifetime in seconds.
func runAdvertiser(t testing.TB, n *Net, name, cidr string, lifetime int) *Dnsmasq {
	t.Helper()
	peer := n.AddPeer(t, name, "")
	// nodad: the address is usable at once, so dnsmasq can build its RA
	// from it without waiting ~1 s for duplicate address detection.
	mustRun(t, "ip", "-n", peer, "addr", "add", cidr, "dev", "eth0", "nodad")
	return startDnsmasq(t, peer, "router advertisement on", []string{
		"--interface=eth0",
		"--enable-ra",
		"--dhcp-range=::,constructor:eth0,ra-only",
		fmt.Sprintf("--ra-param=eth0,10,%d", lifetime),
	})
}

func startDnsmasq(t testing.TB, ns, ready string, extra []string) *Dnsmasq {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Fatalf("lab: dnsmasq not found (apt-get install dnsmasq-base): %v", err)
	}
	dir := t.TempDir()
	d := &Dnsmasq{
		LogPath:   filepath.Join(dir, "dnsmasq.log"),
		LeasePath: filepath.Join(dir, "dnsmasq.leases"),
	}
	args := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--port=0",
		"--bind-interfaces",
		"--dhcp-leasefile=" + d.LeasePath,
		"--log-facility=" + d.LogPath,
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
		// Debian's default user "dnsmasq" exists only with the full
		// dnsmasq package, not dnsmasq-base.
		"--user=root",
		"--group=root",
	}
	d.proc = Start(t, ns, "dnsmasq", append(args, extra...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq log tail (%s):\n%s", d.LogPath, Tail(d.Log(), 30))
		}
	})
	d.proc.WaitReady(t, "announcing "+ready, 10*time.Second, func() bool { return strings.Contains(d.Log(), ready) })
	return d
}

// Log returns dnsmasq's log so far.
func (d *Dnsmasq) Log() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(read %s: %v)", d.LogPath, err)
	}
	return string(b)
}

// Leases returns the lease file's lines (expiry mac ip hostname client-id).
func (d *Dnsmasq) Leases() []string {
	b, _ := os.ReadFile(d.LeasePath)
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}
