package dhcp

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/testbuf"
)

// leased runs a DORA for d and returns the ACKed address.
func (l *lab) leased(d *dhcpv4.DHCPv4) net.IP {
	l.t.Helper()
	o := l.expect(l.dhcp, d)
	a := l.expect(l.dhcp, requestFor(d, o))
	if a.MessageType() != dhcpv4.MessageTypeAck {
		l.t.Fatalf("DORA of %v: %v", d.ClientHWAddr, a.Summary())
	}
	return a.YourIPAddr
}

// renewalOf is the RENEWING REQUEST of the client of d for a (ciaddr,
// no server identifier, no option 50).
func renewalOf(d *dhcpv4.DHCPv4, a net.IP) *dhcpv4.DHCPv4 {
	r, _ := dhcpv4.FromBytes(d.ToBytes())
	r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	r.Options.Del(dhcpv4.OptionRequestedIPAddress)
	r.Options.Del(dhcpv4.OptionServerIdentifier)
	r.ClientIPAddr = a
	return r
}

// renew sends the RENEWING REQUEST of the client of d for a and returns
// the reply, received where §4.1 sends it: unicast to a:68.
func (l *lab) renew(d *dhcpv4.DHCPv4, a net.IP) *dhcpv4.DHCPv4 {
	l.t.Helper()
	holder, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a, Port: ClientPort})
	if err != nil {
		l.t.Fatal(err)
	}
	defer holder.Close()
	req := renewalOf(d, a)
	l.send(l.dhcp, req.ToBytes())
	holder.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := holder.ReadFrom(buf)
	if err != nil {
		l.t.Fatalf("no reply to the renewal at %v: %v", a, err)
	}
	r, err := dhcpv4.FromBytes(buf[:n])
	if err != nil || r.TransactionID != req.TransactionID {
		l.t.Fatalf("renewal reply: %v, %v", r, err)
	}
	return r
}

// A RELEASE frees a lease only when the holder sends it: unicast from the
// address it releases, not relayed (RFC 2131 §4.4.4). Forged ones (from
// 0.0.0.0 or any other address, relayed, for another client's address)
// leave the stored lease and the pool alone, and the host's renewal is
// still ACKed.
func TestFullForgedRelease(t *testing.T) {
	store := &MemLeases{}
	cfg := loopConfig()
	cfg.Leases = store
	cfg.TrustedRelays = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	l := startLab(t, cfg)
	host := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	a := l.leased(host)
	other := l.leased(withMAC(loadPacket(t, "nonpxe-discover"), 2))

	relayed := releaseOf(host, a, cfg.ServerIP)
	relayed.GatewayIPAddr = net.IPv4(127, 0, 0, 2).To4()
	l.send(l.dhcp, releaseOf(host, a, cfg.ServerIP).ToBytes()) // from 127.0.0.1
	l.sendFrom(other, l.dhcp, releaseOf(host, a, cfg.ServerIP))
	l.sendFrom(a, l.dhcp, relayed)
	l.sendFrom(a, l.dhcp, releaseOf(host, other, cfg.ServerIP))
	if st := l.stats(func(st Stats) bool { return st.ReleasesRefused == 4 }); st.ReleasesRefused != 4 || st.Releases != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if ls, ok := store.Lease(host.ClientHWAddr); !ok || ls.IP.String() != a.String() {
		t.Fatalf("stored lease after forged RELEASEs = %+v, %v; want %v", ls, ok, a)
	}
	if r := l.renew(host, a); r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(a) {
		t.Fatalf("renewal after forged RELEASEs: %v", r.Summary())
	}
	// Nobody else is offered the address.
	if o := l.expect(l.dhcp, withMAC(loadPacket(t, "nonpxe-discover"), 3)); o.YourIPAddr.Equal(a) {
		t.Fatalf("a third client is offered the host's %v", a)
	}
}

// A DECLINE is believed only for the address the client is getting now:
// a forged one for a host's lease of old leaves it stored and renewable;
// one from a client the policy refuses is ignored; one MAC can keep only
// maxDeclinesPerMAC addresses in quarantine, counted and warned about
// once a minute.
func TestFullForgedDecline(t *testing.T) {
	store := &MemLeases{}
	cfg := loopConfig()
	cfg.Leases = store
	cfg.Ranges[0].End = netip.MustParseAddr("127.0.0.109") // 10 addresses
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	cfg.Policy = PolicyFunc(func(c *Client) bool { _, ok := hosts.Lookup(c.MAC); return ok })
	clock := newTestClock()
	logs := &testbuf.Buffer{}
	l := startLab(t, cfg, clock.hook(), func(s *Server) { s.log = zerolog.New(logs).Level(zerolog.WarnLevel) })
	base := loadPacket(t, "nonpxe-discover")
	host, forger, stranger := withMAC(base, 1), withMAC(base, 2), withMAC(base, 3)
	hosts.set(host.ClientHWAddr, "")
	hosts.set(forger.ClientHWAddr, "")
	a := l.leased(host)
	clock.add(declineWindow + time.Second)

	// The host's lease, ACKed long ago, declined by someone else.
	l.expectNothing(l.dhcp, declineOf(host, a, cfg.ServerIP).ToBytes())
	// A stranger's DECLINE is refused by the policy before anything.
	l.expectNothing(l.dhcp, declineOf(stranger, net.IPv4(127, 0, 0, 105), cfg.ServerIP).ToBytes())
	if st := l.stats(func(st Stats) bool { return st.DeclinesRefused == 1 && st.Ignored == 1 }); st.DeclinesRefused != 1 || st.Ignored != 1 || st.Declines != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if ls, ok := store.Lease(host.ClientHWAddr); !ok || ls.IP.String() != a.String() {
		t.Fatalf("stored lease after a forged DECLINE = %+v, %v; want %v", ls, ok, a)
	}
	if r := l.renew(host, a); r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(a) {
		t.Fatalf("renewal after a forged DECLINE: %v", r.Summary())
	}
	// A renewal opens no window: the host has used the address all along.
	l.expectNothing(l.dhcp, declineOf(host, a, cfg.ServerIP).ToBytes())
	if st := l.stats(func(st Stats) bool { return st.DeclinesRefused == 2 }); st.DeclinesRefused != 2 || st.Declines != 0 {
		t.Fatalf("DECLINE right after a renewal: stats = %+v", st)
	}
	if _, ok := store.Lease(host.ClientHWAddr); !ok {
		t.Fatal("lease deleted by a DECLINE right after a renewal")
	}

	// A host that finds the address it was just given in use declines
	// it: believed, the lease goes.
	fresh := withMAC(base, 4)
	hosts.set(fresh.ClientHWAddr, "")
	l.expectNothing(l.dhcp, declineOf(fresh, l.leased(fresh), cfg.ServerIP).ToBytes())
	if st := l.stats(func(st Stats) bool { return st.Declines == 1 }); st.Declines != 1 {
		t.Fatalf("DECLINE right after the ACK: stats = %+v", st)
	}
	if _, ok := store.Lease(fresh.ClientHWAddr); ok {
		t.Fatal("declined lease still stored")
	}

	// A known MAC declines every offer: two addresses go into quarantine,
	// then its DECLINEs are refused and it keeps its offer.
	var quarantined []string
	for range 8 {
		o := l.expect(l.dhcp, forger)
		l.send(l.dhcp, declineOf(forger, o.YourIPAddr, cfg.ServerIP).ToBytes())
		quarantined = append(quarantined, o.YourIPAddr.String())
		l.stats(func(st Stats) bool { return st.Declines-1+st.DeclinesCapped == uint64(len(quarantined)) })
	}
	st := l.s.Stats()
	if st.Declines-1 != maxDeclinesPerMAC || st.DeclinesCapped != 8-maxDeclinesPerMAC {
		t.Fatalf("the forger's declines %d, capped %d; want %d, %d (addresses %v)", st.Declines-1, st.DeclinesCapped, maxDeclinesPerMAC, 8-maxDeclinesPerMAC, quarantined)
	}
	if n := strings.Count(logs.String(), "quota of quarantined"); n != 1 {
		t.Errorf("%d quota warnings, want 1:\n%s", n, logs.String())
	}
	// Of ten addresses, three are quarantined, one is the forger's offer
	// and one the host's lease: five remain for the others.
	for b := byte(10); b < 15; b++ {
		d := withMAC(base, b)
		hosts.set(d.ClientHWAddr, "")
		l.leased(d)
	}
	// The quarantine lapses: the forger may decline again.
	clock.add(declineHold + time.Second)
	o := l.expect(l.dhcp, forger)
	l.send(l.dhcp, declineOf(forger, o.YourIPAddr, cfg.ServerIP).ToBytes())
	if st := l.stats(func(st Stats) bool { return st.Declines == maxDeclinesPerMAC+2 }); st.Declines != maxDeclinesPerMAC+2 {
		t.Errorf("after the quarantine lapsed: stats = %+v", st)
	}
}

// Random MACs that each DISCOVER and DECLINE (discover mode: no policy)
// quarantine no more than the unknown share: known hosts still get
// addresses.
func TestFullDeclineCountsAgainstUnknownShare(t *testing.T) {
	cfg := loopConfig()
	cfg.Ranges[0].End = netip.MustParseAddr("127.0.0.109") // 10 addresses
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	cfg.UnknownShare = 50
	l := startLab(t, cfg, newTestClock().hook())
	base := loadPacket(t, "nonpxe-discover")
	for b := byte(100); b < 140; b++ {
		l.send(l.dhcp, withMAC(base, b).ToBytes())
		// Each offer is declined by its client (a late one by the MAC
		// it names, not the one asking now).
		if o := l.recv(100 * time.Millisecond); o != nil {
			l.send(l.dhcp, declineOf(withMAC(base, o.ClientHWAddr[5]), o.YourIPAddr, cfg.ServerIP).ToBytes())
		}
	}
	if st := l.stats(func(st Stats) bool { return st.Declines == 5 }); st.Declines != 5 || st.Offers != 5 {
		t.Fatalf("strangers: stats = %+v; want 5 offers and 5 declines (50%% of 10)", st)
	}
	for b := byte(1); b <= 5; b++ {
		d := withMAC(base, b)
		hosts.set(d.ClientHWAddr, "")
		l.leased(d)
	}
}

// A DISCOVER's ciaddr does not steer the OFFER, nor a SELECTING REQUEST's
// the ACK: both are broadcast. A RENEWING client's ACK goes to its
// address (busybox udhcpc renews so).
func TestFullCiaddrDoesNotSteer(t *testing.T) {
	cfg := loopConfig()
	l := startLab(t, cfg)
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: ClientPort})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	d := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	d.ClientIPAddr = net.IPv4(127, 0, 0, 9).To4()
	o := l.expect(l.dhcp, d) // at the broadcast socket
	req := requestFor(d, o)
	if r := l.expect(l.dhcp, req); r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("ACK: %v", r.Summary())
	}
	target.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := target.ReadFrom(make([]byte, 2048)); err == nil {
		t.Fatalf("%d bytes sent to the forged ciaddr", n)
	}
	// The lease holder renews from its address: unicast there.
	if r := l.renew(d, o.YourIPAddr); r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal reply: %v", r.Summary())
	}
}

// Proxy mode: a relayed request is answered only from a trusted relay,
// else dropped and counted; the REQUEST of a client the policy refuses
// never reaches the overheard-address table.
func TestProxyRelayTrustAndAdmissionFirst(t *testing.T) {
	cfg := testConfig(ModeProxy)
	cfg.ServerIP = net.IPv4(127, 0, 0, 1)
	cfg.TrustedRelays = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	known := withMAC(loadPacket(t, "bios-pxe-discover"), 1).ClientHWAddr
	cfg.Policy = PolicyFunc(func(c *Client) bool { return c.MAC.String() == known.String() })
	var (
		mu   sync.Mutex
		seen = map[string]string{}
	)
	cfg.OnSiteAddress = func(mac net.HardwareAddr, a netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		seen[a.String()] = mac.String()
	}
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	l := startLab(t, cfg, func(s *Server) { s.relayPort = relay.LocalAddr().(*net.UDPAddr).Port })

	d := withMAC(loadPacket(t, "bios-pxe-discover"), 1)
	d.GatewayIPAddr = net.IPv4(127, 0, 0, 3).To4() // untrusted
	l.expectNothing(l.dhcp, d.ToBytes())
	d.GatewayIPAddr = net.IPv4(127, 0, 0, 2).To4()
	l.send(l.dhcp, d.ToBytes())
	relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := relay.ReadFrom(make([]byte, 2048)); err != nil {
		t.Fatalf("no offer at the trusted relay: %v", err)
	}

	siteReq := func(last byte, a string) *dhcpv4.DHCPv4 {
		r := withMAC(loadPacket(t, "bios-pxe-discover"), last)
		r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
		r.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 99)))
		r.UpdateOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a)))
		return r
	}
	l.send(l.dhcp, siteReq(1, "10.0.0.5").ToBytes())
	l.send(l.dhcp, siteReq(7, "10.0.0.5").ToBytes()) // refused: must not overwrite
	l.send(l.dhcp, siteReq(8, "10.0.0.6").ToBytes()) // refused: must not add
	if st := l.stats(func(st Stats) bool { return st.Ignored == 3 }); st.RelayRefused != 1 || st.Ignored != 3 {
		t.Fatalf("stats = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen["10.0.0.5"] != known.String() {
		t.Errorf("overheard table = %v; want only 10.0.0.5 → %v", seen, known)
	}
}
