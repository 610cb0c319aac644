package faults

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// A routed bench (issue 11, item 2): the real binary on 10.81.0.1/24
// serves full DHCP to 10.82.0.0/24, a subnet behind a router namespace
// (10.81.0.254 toward the server, 10.82.0.1 toward the bench) that runs
// ISC dhcrelay; the bench's host is busybox udhcpc. The relay puts
// 10.82.0.1 in giaddr and forwards to the server's address, as a site's
// relay does; the server host routes the bench through the router, as
// a site's does.
type routedBench struct {
	*strangerLab
	hostNS string
	relay  *lab.Dhcrelay
}

const benchRange = "10.82.0.100-10.82.0.199/24,router=10.82.0.1,dns=10.82.0.53,dns=10.82.0.54"

func newRoutedBench(t *testing.T) *routedBench {
	t.Helper()
	r := lab.NewRouted(t, "frb", strangerServer+"/24", "10.81.0.254/24", "10.82.0.1/24")
	b := &routedBench{strangerLab: newStrangerLabOn(t, r.Server)}
	b.hostNS = r.Router.AddPeer(t, "frh", "")
	b.relay = lab.RunDhcrelay(t, r, netip.MustParseAddr(strangerServer))
	return b
}

// The bench's host gets an address of the relayed range with that
// range's options 1, 3 and 6 through a real relay, whose log shows the
// replies reached it (dhcrelay reads only its port 67, at giaddr); the
// lease is stored, survives a restart of the server, and is renewed
// straight from the host (not relayed) after it. No
// --dhcp-trusted-relays: the relay is trusted by the range. On main the
// server refused to start ("range address … is not in ServerIP's
// subnet").
func TestRelayedBenchFullDHCP(t *testing.T) {
	b := newRoutedBench(t)
	hostMAC, err := lab.MACOf(b.hostNS, "eth0")
	must(t, err)
	b.addHosts(hostMAC)
	b.start("--dhcp-mode", "full", "--unknown-hosts", "ignore",
		"--dhcp-range", "10.81.0.100-10.81.0.149", "--dhcp-range", benchRange)
	start := time.Now()
	host := b.udhcpc(b.hostNS)
	got := host.waitEvent("bound", 0)
	t.Logf("bench host bound %v after %v", got, time.Since(start).Round(time.Millisecond))
	if len(got) != 5 || !strings.HasPrefix(got[0], "10.82.0.") || got[1] != "255.255.255.0" || got[2] != "10.82.0.1" ||
		got[3] != "10.82.0.53" || got[4] != "10.82.0.54" {
		t.Fatalf("bound with %q; want an address of 10.82.0.100-199, mask 255.255.255.0, router 10.82.0.1, dns 10.82.0.53 10.82.0.54", got)
	}
	addr := got[0]
	if !b.relay.WaitOutput("Forwarded BOOTREPLY", 5*time.Second) {
		t.Errorf("dhcrelay forwarded no reply:\n%s", lab.Tail(b.relay.Output(), 20))
	}
	b.stop()
	st, err := inventory.Open(b.dataDir, inventory.Options{})
	must(t, err)
	ls, err := st.Leases()
	st.Close()
	must(t, err)
	if len(ls) != 1 || ls[0].MAC != hostMAC.String() || ls[0].IP != addr {
		t.Fatalf("stored leases %+v; want %v at %s", ls, hostMAC, addr)
	}

	// A restart on the same data dir keeps the lease: the host's renewal,
	// unicast from its address through the router, is ACKed.
	b.start("--dhcp-mode", "full", "--unknown-hosts", "ignore",
		"--dhcp-range", "10.81.0.100-10.81.0.149", "--dhcp-range", benchRange)
	before := strings.Count(host.events(), "\n")
	must(t, host.p.Signal(syscall.SIGUSR1))
	if r := host.waitEvent("renew", before); r[0] != addr || r[2] != "10.82.0.1" {
		t.Errorf("renewal after restart: %q, want %s via router 10.82.0.1", r, addr)
	}
	if ev := host.events(); strings.Contains(ev, "nak") || strings.Count(ev, "bound") != 1 {
		t.Errorf("the host lost its lease across the restart; events:\n%s", ev)
	}
}
