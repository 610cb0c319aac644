package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// A stranger on the provisioning network (issue 10, items 7 to 11): the
// real binary serves DHCP on a bridge in a namespace; real hosts are
// busybox udhcpc in namespaces of their own, and the stranger sends raw
// insomniacslk/dhcp packets from another (from 0.0.0.0 out of one with
// no address, as a client without a lease sends).

const strangerServer = "10.81.0.1"

// strangerLab is the network, the server and the hosts the inventory
// knows.
type strangerLab struct {
	t         *testing.T
	net       *lab.Net
	srv       *lab.Process
	dataDir   string
	ipxeDir   string
	kpxe      []byte
	hostCount int
}

func newStrangerLab(t *testing.T, name string) *strangerLab {
	t.Helper()
	return newStrangerLabOn(t, lab.NewNet(t, name, strangerServer+"/24"))
}

// newStrangerLabOn is newStrangerLab on n, a segment with the server at
// strangerServer made by the caller (the server's side of a lab.Routed).
func newStrangerLabOn(t *testing.T, n *lab.Net) *strangerLab {
	t.Helper()
	l := &strangerLab{t: t, net: n, dataDir: t.TempDir(), ipxeDir: t.TempDir()}
	l.kpxe = []byte(strings.Repeat("undionly ", 2000))
	must(t, os.WriteFile(filepath.Join(l.ipxeDir, "undionly.kpxe"), l.kpxe, 0o644))
	must(t, os.WriteFile(filepath.Join(l.ipxeDir, "snponly.efi"), []byte("ipxe snponly.efi"), 0o644))
	return l
}

// peer adds a host namespace on the bridge (no address if cidr is "")
// and returns it with its MAC.
func (l *strangerLab) peer(name, cidr string) (string, net.HardwareAddr) {
	l.t.Helper()
	ns := l.net.AddPeer(l.t, name, cidr)
	mac, err := lab.MACOf(ns, "eth0")
	must(l.t, err)
	return ns, mac
}

// addHosts puts macs in the inventory; the server must be down.
func (l *strangerLab) addHosts(macs ...net.HardwareAddr) {
	l.t.Helper()
	st, err := inventory.Open(l.dataDir, inventory.Options{})
	must(l.t, err)
	defer st.Close()
	for _, m := range macs {
		l.hostCount++
		_, err := st.CreateHost(inventory.Host{MAC: m.String(), Name: fmt.Sprintf("rack%d", l.hostCount)})
		must(l.t, err)
	}
}

// start runs stagehand serve on the bridge with args added and waits
// until it answers on port 67 and HTTP.
func (l *strangerLab) start(args ...string) {
	l.t.Helper()
	l.srv = lab.Start(l.t, l.net.NS, binary, append([]string{"serve", "--interface", l.net.Bridge,
		"--data-dir", l.dataDir, "--ipxe-dir", l.ipxeDir, "--http-port", "8080", "--tftp-port", "69",
		"--log-format", "json", "--log-level", "warn"}, args...)...)
	c := lab.ClientIn(l.net.NS)
	l.srv.WaitReady(l.t, "serving", 15*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.net.NS, "ss", "-Hlun", "sport = :67").Output()
		r, err := c.Get("http://" + strangerServer + ":8080/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && len(strings.TrimSpace(string(out))) > 0
	})
}

// stop ends the server with SIGTERM: the events recorder commits first.
func (l *strangerLab) stop() {
	l.t.Helper()
	if l.srv.StopWithin(syscall.SIGTERM, 15*time.Second) != true {
		l.t.Fatal("server did not stop within 15 s of SIGTERM")
	}
}

// store opens the inventory the stopped server left.
func (l *strangerLab) store() *inventory.Store {
	l.t.Helper()
	st, err := inventory.Open(l.dataDir, inventory.Options{})
	must(l.t, err)
	l.t.Cleanup(func() { st.Close() })
	return st
}

// metric returns the sample of /metrics named exactly name (labels
// included, as written), or -1 if there is none.
func (l *strangerLab) metric(name string) float64 {
	l.t.Helper()
	tok, err := os.ReadFile(filepath.Join(l.dataDir, "api-token"))
	must(l.t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://"+strangerServer+":8080/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	res, err := lab.ClientIn(l.net.NS).Do(req)
	must(l.t, err)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(l.t, err)
			return f
		}
	}
	return -1
}

// waitMetric polls name until ok accepts it or 10 s pass, and returns
// the last value.
func (l *strangerLab) waitMetric(name string, ok func(float64) bool) float64 {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := l.metric(name)
		if ok(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dropped(reason string) string {
	return `stagehand_dhcp_dropped_total{reason="` + reason + `"}`
}

// udhcpc is busybox udhcpc in ns, run in the foreground with an event
// script that configures the address (and the default route, if the
// server gave a router) and logs "EVENT IP MASK ROUTER DNS..." lines.
type udhcpc struct {
	t   *testing.T
	p   *lab.Process
	log string
}

func (l *strangerLab) udhcpc(ns string, args ...string) *udhcpc {
	l.t.Helper()
	dir := l.t.TempDir()
	u := &udhcpc{t: l.t, log: filepath.Join(dir, "events")}
	script := filepath.Join(dir, "script.sh")
	must(l.t, os.WriteFile(script, []byte(`#!/bin/sh
echo "$1 $ip $subnet $router $dns" >>`+u.log+`
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
	;;
esac
exit 0
`), 0o755))
	u.p = lab.Start(l.t, ns, "busybox", append([]string{"udhcpc", "-i", "eth0", "-f", "-s", script, "-t", "10", "-T", "1", "-A", "1"}, args...)...)
	return u
}

// wait returns the address of the first logged event of kind (after the
// first skip lines), failing after 20 s.
func (u *udhcpc) wait(kind string, skip int) string {
	u.t.Helper()
	return u.waitEvent(kind, skip)[0]
}

// waitEvent is wait returning the event's fields after its kind: the
// address, then the mask, router and DNS servers the server gave.
func (u *udhcpc) waitEvent(kind string, skip int) []string {
	u.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(u.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, ln := range lines[min(skip, len(lines)):] {
			if f := strings.Fields(ln); len(f) > 1 && f[0] == kind {
				return f[1:]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(u.log)
	u.t.Fatalf("udhcpc: no %q event in 20 s; events:\n%s\noutput:\n%s", kind, b, lab.Tail(u.p.Output(), 20))
	return nil
}

func (u *udhcpc) events() string {
	b, _ := os.ReadFile(u.log)
	return string(b)
}

// dhcpSocket is a DHCP client socket on port in ns (0.0.0.0, pinned to
// eth0, broadcast allowed).
func dhcpSocket(t *testing.T, ns string, port int) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	must(t, lab.InNS(ns, func() (err error) {
		c, err = dhcp.ListenUDP("eth0", port)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	bcast67   = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcp.ServerPort}
	unicast67 = &net.UDPAddr{IP: net.ParseIP(strangerServer), Port: dhcp.ServerPort}
	serverID  = dhcpv4.OptServerIdentifier(net.ParseIP(strangerServer))
)

// forged is a message of type typ for mac, with a random xid.
func forged(t *testing.T, typ dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(typ)}, mods...)...)
	must(t, err)
	return p
}

// pxe marks p as a BIOS PXE client's.
func pxe(p *dhcpv4.DHCPv4) {
	p.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}))
}

func sendTo(t *testing.T, c net.PacketConn, p *dhcpv4.DHCPv4, to net.Addr) {
	t.Helper()
	if _, err := c.WriteTo(p.ToBytes(), to); err != nil {
		t.Fatal(err)
	}
}

// replyTo reads c until the reply to p arrives (returned) or wait passes
// (nil).
func replyTo(c net.PacketConn, p *dhcpv4.DHCPv4, wait time.Duration) *dhcpv4.DHCPv4 {
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if r, err := dhcpv4.FromBytes(buf[:n]); err == nil && r.TransactionID == p.TransactionID && r.OpCode == dhcpv4.OpcodeBootReply {
			return r
		}
	}
}

// received counts the datagrams c gets within wait.
func received(c net.PacketConn, wait time.Duration) int {
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(wait))
	n := 0
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return n // the deadline
		}
		n++
	}
}

// Items 7 and 8: a stranger forges a RELEASE (from 0.0.0.0, and from its
// own address) and a DECLINE for a real host's lease, with its MAC and
// address. None is believed: the lease stays stored, another client that
// asks for the address gets another one (no duplicate), and the host's
// renewal is ACKed, not NAKed. On main the RELEASE from 0.0.0.0 was
// accepted: the lease was deleted, the address handed to the next client,
// and the renewal NAKed.
func TestStrangerForgedReleaseDecline(t *testing.T) {
	l := newStrangerLab(t, "fsrel")
	hostNS, hostMAC := l.peer("fsh", "")
	otherNS, otherMAC := l.peer("fso", "")
	bareNS, _ := l.peer("fsb", "")
	strNS, _ := l.peer("fss", "10.81.0.3/24")
	l.addHosts(hostMAC, otherMAC)
	l.start("--dhcp-mode", "full", "--dhcp-range", "10.81.0.100-10.81.0.109", "--unknown-hosts", "ignore")

	host := l.udhcpc(hostNS)
	ip := host.wait("bound", 0)
	acked := time.Now()
	t.Logf("host %v bound %s", hostMAC, ip)
	lease := net.ParseIP(ip).To4()

	rel := forged(t, dhcpv4.MessageTypeRelease, hostMAC, dhcpv4.WithOption(serverID))
	rel.ClientIPAddr = lease
	sendTo(t, dhcpSocket(t, bareNS, dhcp.ClientPort), rel, bcast67)  // from 0.0.0.0
	sendTo(t, dhcpSocket(t, strNS, dhcp.ClientPort), rel, unicast67) // from 10.81.0.3
	// The DECLINE comes after the host's exchange: it probes its address
	// right after the ACK, not minutes later.
	time.Sleep(time.Until(acked.Add(11 * time.Second)))
	dec := forged(t, dhcpv4.MessageTypeDecline, hostMAC, dhcpv4.WithOption(serverID),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(lease)))
	sendTo(t, dhcpSocket(t, bareNS, dhcp.ClientPort), dec, bcast67)
	relRefused := l.waitMetric(dropped("release_refused"), func(v float64) bool { return v >= 2 })
	decRefused := l.waitMetric(dropped("decline_refused"), func(v float64) bool { return v >= 1 })
	t.Logf("refused: %v RELEASEs, %v DECLINEs", relRefused, decRefused)

	// Another host asks for the address: it must get another.
	other := l.udhcpc(otherNS, "-r", ip)
	otherIP := other.wait("bound", 0)
	if otherIP == ip {
		t.Errorf("a second host was given %s, the address the first still uses", ip)
	}
	// The host renews (SIGUSR1: a unicast REQUEST from its address).
	before := strings.Count(host.events(), "\n")
	must(t, host.p.Signal(syscall.SIGUSR1))
	if got := host.wait("renew", before); got != ip {
		t.Errorf("renewal: %q, want %s", got, ip)
	}
	if ev := host.events(); strings.Contains(ev, "nak") || strings.Count(ev, "deconfig") > 1 {
		t.Errorf("host lost its lease:\n%s", ev)
	}

	l.stop()
	ls, err := l.store().Leases()
	must(t, err)
	got := map[string]string{}
	for _, x := range ls {
		got[x.MAC] = x.IP
	}
	if got[hostMAC.String()] != ip || got[otherMAC.String()] == ip {
		t.Errorf("stored leases %v; want %s for %v and another for %v", got, ip, hostMAC, otherMAC)
	}
	if relRefused < 2 || decRefused < 1 {
		t.Errorf("refusals counted: %v RELEASEs, %v DECLINEs; want 2 and 1", relRefused, decRefused)
	}
}

// declineFlood has the stranger DISCOVER and DECLINE every offer with
// mac(i) up to n times, stopping when no offer comes, and returns the
// distinct addresses it was offered.
func declineFlood(t *testing.T, c net.PacketConn, n int, mac func(i int) net.HardwareAddr) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for i := range n {
		d := forged(t, dhcpv4.MessageTypeDiscover, mac(i))
		d.SetBroadcast()
		sendTo(t, c, d, bcast67)
		o := replyTo(c, d, time.Second)
		if o == nil {
			break
		}
		seen[o.YourIPAddr.String()] = true
		dec := forged(t, dhcpv4.MessageTypeDecline, mac(i), dhcpv4.WithOption(serverID),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))
		sendTo(t, c, dec, bcast67)
	}
	return seen
}

// Item 7: DISCOVER → OFFER → DECLINE, again and again, with a known
// host's MAC under --unknown-hosts ignore, and with random MACs under
// discover, on a range of 10. Known MAC: at most two addresses go into
// quarantine (the rest are refused and counted); random MACs: at most
// their unknown share (50 % here). A real host (udhcpc) still gets an
// address. On main every address of the range was quarantined and the
// host got none.
func TestStrangerDeclineFlood(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		mac     func(known net.HardwareAddr) func(int) net.HardwareAddr
		maxSeen int // addresses the stranger may take: its quarantines and its offer
	}{
		{"known MAC, ignore", []string{"--unknown-hosts", "ignore"},
			func(known net.HardwareAddr) func(int) net.HardwareAddr {
				return func(int) net.HardwareAddr { return known }
			}, 3},
		{"random MACs, discover", []string{"--unknown-hosts", "discover", "--dhcp-unknown-share", "50"},
			func(net.HardwareAddr) func(int) net.HardwareAddr {
				return func(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0x66, 0, 0, 0, byte(i)} }
			}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newStrangerLab(t, "fsdec")
			realNS, realMAC := l.peer("fsr", "")
			strNS, _ := l.peer("fss", "10.81.0.3/24")
			offline := net.HardwareAddr{0x02, 0x5a, 0, 0, 0, 1} // a known host, powered off: its MAC is no secret
			l.addHosts(realMAC, offline)
			l.start(append([]string{"--dhcp-mode", "full", "--dhcp-range", "10.81.0.100-10.81.0.109"}, tc.args...)...)

			start := time.Now()
			seen := declineFlood(t, dhcpSocket(t, strNS, dhcp.ClientPort), 30, tc.mac(offline))
			t.Logf("stranger was offered %d distinct addresses in %v", len(seen), time.Since(start).Round(time.Millisecond))
			if len(seen) > tc.maxSeen {
				t.Errorf("the stranger took %d addresses out of a range of 10 (%v); want at most %d", len(seen), seen, tc.maxSeen)
			}
			asked := time.Now()
			host := l.udhcpc(realNS, "-n", "-q")
			ip := host.wait("bound", 0)
			t.Logf("real host bound %s %v after it started asking", ip, time.Since(asked).Round(time.Millisecond))
			if tc.maxSeen == 3 {
				if v := l.metric(dropped("decline_capped")); v < 1 {
					t.Errorf("capped DECLINEs counted: %v", v)
				}
			}
		})
	}
}

// Item 9: after a real host's exchange (busybox udhcpc), 250 DISCOVERs
// with its MAC in under a second, every other one as a BIOS PXE client
// (so the replies, and any event describing them, differ), write at most
// a dozen dhcp events: the real exchange's events and the created event
// stay. On main each reply wrote an event and the real exchange's were
// evicted.
func TestStrangerDHCPEventFlood(t *testing.T) {
	l := newStrangerLab(t, "fsevt")
	hostNS, host := l.peer("fsh", "")
	strNS, _ := l.peer("fss", "10.81.0.3/24")
	l.addHosts(host)
	l.start("--dhcp-mode", "full", "--dhcp-range", "10.81.0.100-10.81.0.109", "--unknown-hosts", "ignore")
	ip := l.udhcpc(hostNS, "-n", "-q").wait("bound", 0)
	realAck := "full " + dhcpv4.MessageTypeAck.String() + " " + ip + ", no boot file"

	c := dhcpSocket(t, strNS, dhcp.ClientPort)
	start := time.Now()
	for i := range 250 {
		d := forged(t, dhcpv4.MessageTypeDiscover, host)
		d.SetBroadcast()
		if i%2 == 0 {
			pxe(d)
		}
		sendTo(t, c, d, bcast67)
	}
	t.Logf("250 DISCOVERs sent in %v", time.Since(start).Round(time.Millisecond))
	offers := l.waitMetric(`stagehand_dhcp_replies_total{type="offer",mode="full"}`, func(v float64) bool { return v >= 251 })
	l.stop()
	evs, err := l.store().Events(host.String())
	must(t, err)
	var dhcpEvents int
	var created, acked bool
	for _, e := range evs {
		switch {
		case e.Kind == "dhcp":
			dhcpEvents++
			acked = acked || strings.HasPrefix(e.Detail, realAck)
		case e.Kind == "created":
			created = true
		}
	}
	t.Logf("%v offers sent; the host has %d events, %d of them dhcp", offers, len(evs), dhcpEvents)
	if offers < 251 {
		t.Errorf("%v offers, want 251 (the flood must be answered for the test to mean anything)", offers)
	}
	if dhcpEvents > 12 || !created || !acked {
		t.Errorf("after 250 DISCOVERs: %d dhcp events (want at most 12), created event kept: %v, the real exchange's %q kept: %v",
			dhcpEvents, created, realAck, acked)
	}
}

// Item 10: replies go where RFC 2131 §4.1 says, not where a sender
// chooses. 100 DISCOVERs with another host's address as ciaddr and 100
// with it as giaddr send that host nothing, in full and proxy mode; the
// relayed ones are dropped and counted. A relay listed in
// --dhcp-trusted-relays is answered. On main the victim got every reply.
func TestStrangerSteersReplies(t *testing.T) {
	for _, mode := range []string{"full", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			l := newStrangerLab(t, "fsst")
			strNS, _ := l.peer("fss", "10.81.0.3/24")
			victimNS, _ := l.peer("fsv", "10.81.0.4/24")
			relayNS, _ := l.peer("fsr", "10.81.0.5/24")
			args := []string{"--dhcp-mode", mode, "--unknown-hosts", "discover", "--dhcp-trusted-relays", "10.81.0.5"}
			if mode == "full" {
				args = append(args, "--dhcp-range", "10.81.0.100-10.81.0.149")
			}
			l.start(args...)
			var victim68, victim67, relay67 net.PacketConn
			must(t, lab.InNS(victimNS, func() (err error) {
				if victim68, err = net.ListenPacket("udp4", "10.81.0.4:68"); err != nil {
					return err
				}
				victim67, err = net.ListenPacket("udp4", "10.81.0.4:67")
				return err
			}))
			must(t, lab.InNS(relayNS, func() (err error) {
				relay67, err = net.ListenPacket("udp4", "10.81.0.5:67")
				return err
			}))
			defer victim68.Close()
			defer victim67.Close()
			defer relay67.Close()

			// A trusted relay is answered (first: the strangers below take
			// the unknown share of the pool).
			d := forged(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{0x02, 0x77, 0, 1, 0, 0})
			pxe(d)
			d.GatewayIPAddr = net.ParseIP("10.81.0.5").To4()
			sendTo(t, dhcpSocket(t, relayNS, dhcp.ClientPort), d, unicast67)
			if r := replyTo(relay67, d, 5*time.Second); r == nil || r.MessageType() != dhcpv4.MessageTypeOffer {
				t.Errorf("trusted relay: %v", r)
			}

			c := dhcpSocket(t, strNS, dhcp.ClientPort)
			victim := net.ParseIP("10.81.0.4").To4()
			for i := range 200 {
				d := forged(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{0x02, 0x77, 0, 0, byte(i >> 8), byte(i)})
				pxe(d)
				if i%2 == 0 {
					d.ClientIPAddr = victim
				} else {
					d.GatewayIPAddr = victim
				}
				sendTo(t, c, d, bcast67)
			}
			untrusted := l.waitMetric(dropped("untrusted_relay"), func(v float64) bool { return v >= 100 })
			at68, at67 := received(victim68, time.Second), received(victim67, 100*time.Millisecond)
			broadcast := received(c, 100*time.Millisecond)
			t.Logf("victim got %d replies at :68 and %d at :67; the stranger saw %d broadcast; %v relayed requests dropped", at68, at67, broadcast, untrusted)
			if at68 != 0 || at67 != 0 || untrusted != 100 {
				t.Errorf("victim got %d + %d replies; %v relayed requests dropped (want 0, 0, 100)", at68, at67, untrusted)
			}
			if broadcast == 0 {
				t.Error("the DISCOVERs with a ciaddr were not answered by broadcast")
			}
		})
	}
}

// Item 11: in proxy mode, the REQUEST a stranger's MAC (ignored by the
// policy) sends for a known host's address does not overwrite the
// address table: the host's TFTP transfer is still put on its record. On
// main the table named the stranger, and the host got no tftp event.
func TestStrangerPoisonsAttribution(t *testing.T) {
	l := newStrangerLab(t, "fsatt")
	hostNS, hostMAC := l.peer("fsh", "10.81.0.50/24")
	strNS, _ := l.peer("fss", "10.81.0.3/24")
	l.addHosts(hostMAC)
	l.start("--dhcp-mode", "proxy", "--unknown-hosts", "ignore")

	// The site's DHCP server is not part of the lab: its REQUESTs are
	// what stagehand overhears, sent by hand.
	siteRequest := func(mac net.HardwareAddr) *dhcpv4.DHCPv4 {
		r := forged(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.81.0.254"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.81.0.50"))))
		pxe(r)
		return r
	}
	sendTo(t, dhcpSocket(t, hostNS, dhcp.ClientPort), siteRequest(hostMAC), bcast67)
	sc := dhcpSocket(t, strNS, dhcp.ClientPort)
	for i := range 50 {
		sendTo(t, sc, siteRequest(net.HardwareAddr{0x02, 0x88, 0, 0, 0, byte(i)}), bcast67)
	}
	l.waitMetric(dropped("ignored"), func(v float64) bool { return v >= 51 })

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", hostNS, "curl", "-sS", "-o", "/dev/null",
		"tftp://"+strangerServer+"/undionly.kpxe").CombinedOutput()
	if err != nil {
		t.Fatalf("curl tftp: %v\n%s", err, out)
	}
	l.stop()
	evs, err := l.store().Events(hostMAC.String())
	must(t, err)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+": "+e.Detail)
	}
	if !strings.Contains(strings.Join(kinds, "\n"), "tftp: undionly.kpxe") {
		t.Errorf("the host's TFTP transfer is not on its record; its events:\n%s", strings.Join(kinds, "\n"))
	}
}
