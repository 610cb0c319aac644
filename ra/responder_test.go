package ra

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/rs/zerolog"
	"golang.org/x/net/ipv6"

	"github.com/stagehand-dev/stagehand/lab"
	"github.com/stagehand-dev/stagehand/metrics"
)

// TestMain lets these tests open sockets in namespaces: lab needs root.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Stderr.WriteString("ra: the tests build network namespaces and need root\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// link is a lab network with a Responder serving its bridge, as
// stagehand serves its DHCP interface, and the MACs it is booting.
type link struct {
	t       *testing.T
	n       *lab.Net
	r       *Responder
	mu      sync.Mutex
	booting map[string]bool
}

func newLink(t *testing.T) *link {
	t.Helper()
	l := &link{t: t, n: lab.NewNet(t, "ra", "10.98.0.1/24"), booting: map[string]bool{}}
	// The server's kernel solicits on its own once the bridge has a
	// port; only the responder's solicitation is to be counted.
	run(t, "ip", "netns", "exec", l.n.NS, "sysctl", "-qw", "net.ipv6.conf."+l.n.Bridge+".router_solicitations=0")
	l.r = New(Config{
		Booting: func(mac net.HardwareAddr) bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.booting[mac.String()]
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	var c *Conn
	if err := lab.InNS(l.n.NS, func() (err error) { c, err = Listen(l.n.Bridge); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.r.Serve(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l
}

// serverLL is the responder's interface's link-local address.
func (l *link) serverLL() netip.Addr {
	l.t.Helper()
	var ll netip.Addr
	err := lab.InNS(l.n.NS, func() error {
		ifi, err := net.InterfaceByName(l.n.Bridge)
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, a := range as {
			if p, e := netip.ParsePrefix(a.String()); e == nil && p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr()
			}
		}
		return err
	})
	if err != nil || !ll.IsValid() {
		l.t.Fatalf("no link-local address on %s: %v", l.n.Bridge, err)
	}
	return ll
}

// boot makes mac a host being booted, as a DHCP reply to it does in
// the server: Booting says so from now on, then Booted is told.
func (l *link) boot(mac net.HardwareAddr) {
	l.mu.Lock()
	l.booting[mac.String()] = true
	l.mu.Unlock()
	l.r.Booted(mac)
}

// waitHeld waits until the responder holds a solicitation from mac (or
// holds none any more, when held is false).
func (l *link) waitHeld(mac net.HardwareAddr, held bool) {
	l.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.r.mu.Lock()
		l.r.sweepLocked(time.Now())
		_, ok := l.r.held[[6]byte(mac)]
		l.r.mu.Unlock()
		if ok == held {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("solicitation from %s held: %v, want %v", mac, ok, held)
		}
	}
}

// metric is the responder's sample named exactly name (labels as
// written).
func (l *link) metric(name string) int {
	var b bytes.Buffer
	l.r.WriteMetrics(metrics.NewWriter(&b))
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				l.t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	l.t.Fatalf("no sample %s", name)
	return 0
}

// node is another host on the link with a real ICMPv6 socket: a booting
// machine soliciting, a bystander, or a site's router advertising.
type node struct {
	t   *testing.T
	c   *ndp.Conn
	mac net.HardwareAddr
	ll  netip.Addr
}

func (l *link) addNode(name string) *node {
	l.t.Helper()
	ns := l.n.AddPeer(l.t, name, "")
	// A name no interface of the test's own namespace has: Go resolves
	// a zone name in the calling thread's namespace, and the ndp
	// package sends to its interface by name.
	dev := "ra" + name
	run(l.t, "ip", "-n", ns, "link", "set", "eth0", "down")
	run(l.t, "ip", "-n", ns, "link", "set", "eth0", "name", dev)
	// The peer's kernel would solicit on its own after DAD: only the
	// test's solicitations are to reach the responder.
	run(l.t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+dev+".router_solicitations=0")
	run(l.t, "ip", "-n", ns, "link", "set", dev, "up")
	waitLinkLocal(l.t, ns, dev)
	waitLinkLocal(l.t, l.n.NS, l.n.Bridge)
	nd := &node{t: l.t}
	err := lab.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		nd.mac = ifi.HardwareAddr
		if nd.c, nd.ll, err = ndp.Listen(ifi, ndp.LinkLocal); err != nil {
			return err
		}
		return nd.c.SetControlMessage(ipv6.FlagDst, true)
	})
	if err != nil {
		l.t.Fatal(err)
	}
	nd.ll = nd.ll.WithZone("")
	l.t.Cleanup(func() { nd.c.Close() })
	return nd
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// waitLinkLocal waits until dev in ns has a link-local address past
// duplicate address detection.
func waitLinkLocal(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link")
		if strings.Contains(out, "inet6 fe80") && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no usable link-local address: %s", dev, ns, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// solicit sends a router solicitation as iPXE does: from the link-local
// address, with the source link-layer address option if withMAC.
func (nd *node) solicit(withMAC bool) {
	nd.t.Helper()
	rs := &ndp.RouterSolicitation{}
	if withMAC {
		rs.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: nd.mac}}
	}
	if err := nd.c.WriteTo(rs, nil, netip.MustParseAddr("ff02::2")); err != nil {
		nd.t.Fatal(err)
	}
}

// advertise sends an advertisement to all nodes as a site router does.
func (nd *node) advertise(lifetime time.Duration) {
	nd.t.Helper()
	ra := &ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: lifetime}
	if err := nd.c.WriteTo(ra, nil, netip.MustParseAddr("ff02::1")); err != nil {
		nd.t.Fatal(err)
	}
}

// advertisement waits up to within for a router advertisement from
// the responder's interface and returns it with its destination
// address, or nil.
func (nd *node) advertisement(l *link, within time.Duration) (*ndp.RouterAdvertisement, netip.Addr) {
	nd.t.Helper()
	nd.c.SetReadDeadline(time.Now().Add(within))
	for {
		m, cm, src, err := nd.c.ReadFrom()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, netip.Addr{}
		}
		if err != nil {
			nd.t.Fatal(err)
		}
		if ra, ok := m.(*ndp.RouterAdvertisement); ok && src.WithZone("") == l.serverLL() {
			dst, _ := netip.AddrFromSlice(cm.Dst)
			return ra, dst
		}
	}
}

// quiet is how long a node listens to conclude no answer is coming: the
// responder answers within milliseconds.
const quiet = time.Second

// TestAnswersBootingHost: a host being booted gets an advertisement that
// configures nothing, unicast to it, whether its solicitation names its
// MAC in an option or only in its EUI-64 address; a bystander sees
// nothing, and a host not being booted gets nothing.
func TestAnswersBootingHost(t *testing.T) {
	l := newLink(t)
	host, bystander, stranger := l.addNode("host"), l.addNode("bystand"), l.addNode("strngr")
	l.boot(host.mac)
	l.boot(bystander.mac) // booting too, but it does not ask

	for _, withMAC := range []bool{true, false} {
		host.solicit(withMAC)
		ra, dst := host.advertisement(l, 5*time.Second)
		if ra == nil {
			t.Fatalf("solicitation (MAC option %v) from booting host %s: no advertisement", withMAC, host.mac)
		}
		if dst != host.ll {
			t.Errorf("advertisement sent to %v, want unicast to the host's %v", dst, host.ll)
		}
		if ra.RouterLifetime != 0 || ra.ManagedConfiguration || ra.OtherConfiguration || ra.CurrentHopLimit != 0 ||
			ra.ReachableTime != 0 || ra.RetransmitTimer != 0 {
			t.Errorf("advertisement configures something: %+v", ra)
		}
		if len(ra.Options) != 0 {
			t.Errorf("advertisement carries options %+v; want none (no prefix)", ra.Options)
		}
	}
	if ra, dst := bystander.advertisement(l, quiet); ra != nil {
		t.Errorf("a host that did not solicit saw an advertisement to %v", dst)
	}
	// The server's own solicitations count as not booting too: compare.
	before := l.metric(`stagehand_ipv6_rs_unanswered_total{reason="not_booting"}`)
	stranger.solicit(true)
	if ra, _ := stranger.advertisement(l, quiet); ra != nil {
		t.Errorf("host %s, not being booted, got an advertisement", stranger.mac)
	}
	if got := l.metric("stagehand_ipv6_ra_sent_total"); got != 2 {
		t.Errorf("stagehand_ipv6_ra_sent_total %d, want 2", got)
	}
	if got := l.metric(`stagehand_ipv6_rs_unanswered_total{reason="not_booting"}`); got != before+1 {
		t.Errorf("unanswered (not booting) %d after the stranger's solicitation, want %d", got, before+1)
	}
}

// TestHoldsSolicitationForDHCP: iPXE solicits as it starts its DHCP, so
// its first solicitation can come before stagehand's DHCP reply. It is
// held, and answered when the reply is sent; one whose host is answered
// in DHCP only after the hold lapsed is not answered, and counted.
func TestHoldsSolicitationForDHCP(t *testing.T) {
	l := newLink(t)
	early, late := l.addNode("early"), l.addNode("late")

	early.solicit(true)
	l.waitHeld(early.mac, true)
	l.boot(early.mac)
	if ra, dst := early.advertisement(l, 5*time.Second); ra == nil || dst != early.ll {
		t.Fatalf("solicitation held for the DHCP reply: advertisement %+v to %v, want one to %v", ra, dst, early.ll)
	}

	before := l.metric(`stagehand_ipv6_rs_unanswered_total{reason="not_booting"}`)
	late.solicit(true)
	l.waitHeld(late.mac, true)
	l.waitHeld(late.mac, false) // the hold lapses
	l.boot(late.mac)
	if ra, dst := late.advertisement(l, quiet); ra != nil {
		t.Errorf("solicitation whose hold had lapsed was answered (to %v)", dst)
	}
	if got := l.metric("stagehand_ipv6_ra_sent_total"); got != 1 {
		t.Errorf("stagehand_ipv6_ra_sent_total %d, want 1", got)
	}
	if got := l.metric(`stagehand_ipv6_rs_unanswered_total{reason="not_booting"}`); got != before+1 {
		t.Errorf("unanswered (not booting) %d after the lapsed hold, want %d", got, before+1)
	}
}

// TestStandsDownForRouter: an advertisement with a router lifetime from
// another router silences the responder until that lifetime runs out
// or the router withdraws; one with lifetime 0 (another responder like
// us) does not.
func TestStandsDownForRouter(t *testing.T) {
	l := newLink(t)
	host, router := l.addNode("host"), l.addNode("router")
	l.boot(host.mac)
	answered := func() bool {
		t.Helper()
		host.solicit(true)
		ra, _ := host.advertisement(l, quiet)
		return ra != nil
	}
	router.advertise(0)
	if !answered() || l.r.StandingDown() {
		t.Fatal("an advertisement with router lifetime 0 made the responder stand down")
	}

	const lifetime = 3 * time.Second
	router.advertise(lifetime)
	heard := time.Now()
	waitFor(t, "standing down", l.r.StandingDown)
	if got := l.metric("stagehand_ipv6_ra_standing_down"); got != 1 {
		t.Errorf("stagehand_ipv6_ra_standing_down %d while a router is on the link, want 1", got)
	}
	if answered() {
		t.Fatal("answered a solicitation while a router with a lifetime is on the link")
	}
	// The responder counts the lifetime from when it read the
	// advertisement, a little after heard on a loaded machine.
	time.Sleep(time.Until(heard.Add(lifetime)))
	waitFor(t, "answering after the router's lifetime", func() bool { return !l.r.StandingDown() })
	if !answered() {
		t.Fatal("no answer after the router's lifetime ran out")
	}
	if got := l.metric("stagehand_ipv6_ra_standing_down"); got != 0 {
		t.Errorf("stagehand_ipv6_ra_standing_down %d after the router's lifetime, want 0", got)
	}

	router.advertise(time.Hour)
	waitFor(t, "standing down", l.r.StandingDown)
	router.advertise(0) // the router withdraws (RFC 4861 §6.2.5)
	waitFor(t, "answering again", func() bool { return !l.r.StandingDown() })
	if !answered() {
		t.Fatal("no answer after the router withdrew")
	}
	if got := l.metric(`stagehand_ipv6_rs_unanswered_total{reason="router_present"}`); got != 1 {
		t.Errorf("unanswered (router present) %d, want 1", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSolicitor: the MAC a solicitation names.
func TestSolicitor(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xe2, 0x03, 0x01}
	opt := []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}
	eui := netip.MustParseAddr("fe80::5054:ff:fee2:301")
	for _, c := range []struct {
		name string
		opts []ndp.Option
		src  netip.Addr
		want net.HardwareAddr
	}{
		{"option", opt, netip.MustParseAddr("fe80::1"), mac},
		{"EUI-64", nil, eui, mac},
		{"option wins over EUI-64", opt, netip.MustParseAddr("fe80::200:ff:fe00:1"), mac},
		{"privacy address, no option", nil, netip.MustParseAddr("fe80::1234:5678:9abc:def0"), nil},
		{"unspecified source", opt, netip.IPv6Unspecified(), nil},
		{"global source", opt, netip.MustParseAddr("2001:db8::5054:ff:fee2:301"), nil},
	} {
		got := solicitor(&ndp.RouterSolicitation{Options: c.opts}, c.src)
		if got.String() != c.want.String() {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
