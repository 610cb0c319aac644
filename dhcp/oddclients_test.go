package dhcp

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/testbuf"
)

// Odd and hostile clients against a full-mode Server on loopback.

// testClock is the server's clock hook: time moves only when a test says.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time        { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration)   { c.ns.Add(int64(d)) }
func (c *testClock) hook() func(s *Server) { return func(s *Server) { s.now = c.now } }

// fakeHosts is an inventory: known MACs and their reservations.
type fakeHosts struct {
	mu sync.Mutex
	m  map[string]netip.Addr // mac → reserved address (invalid: none)
}

func (h *fakeHosts) set(mac net.HardwareAddr, reserved string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]netip.Addr{}
	}
	var a netip.Addr
	if reserved != "" {
		a = netip.MustParseAddr(reserved)
	}
	h.m[mac.String()] = a
}

func (h *fakeHosts) Lookup(mac net.HardwareAddr) (netip.Addr, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.m[mac.String()]
	return a, ok
}

func (h *fakeHosts) ReservedFor(a netip.Addr) net.HardwareAddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	for mac, r := range h.m {
		if r == a {
			hw, _ := net.ParseMAC(mac)
			return hw
		}
	}
	return nil
}

func oneAddress(cfg Config) Config {
	cfg.Ranges[0].End = cfg.Ranges[0].Start
	return cfg
}

// Firmware retransmits a DISCOVER with the same xid when the OFFER is
// slow, and may repeat its REQUEST: each copy gets the same answer, and
// the client never holds a second slot of the pool.
func TestFullDuplicateDiscoverSameXID(t *testing.T) {
	store := &MemLeases{}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	cfg.Ranges[0].End = netip.MustParseAddr("192.168.77.101") // two addresses
	l := startLab(t, cfg, newTestClock().hook())
	disc := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	o1 := l.expect(l.dhcp, disc)
	o2 := l.expect(l.dhcp, disc)
	if o1.MessageType() != dhcpv4.MessageTypeOffer || !o1.YourIPAddr.Equal(o2.YourIPAddr) {
		t.Fatalf("duplicate DISCOVER: %v then %v", o1.Summary(), o2.Summary())
	}
	// The second address is still free for another client; a third finds none.
	other := l.expect(l.dhcp, withMAC(disc, 2))
	if other.YourIPAddr.Equal(o1.YourIPAddr) {
		t.Fatalf("second client offered the first one's address %v", o1.YourIPAddr)
	}
	l.expectNothing(l.dhcp, withMAC(disc, 3).ToBytes())

	req := requestFor(disc, o1)
	a1 := l.expect(l.dhcp, req)
	a2 := l.expect(l.dhcp, req)
	if a1.MessageType() != dhcpv4.MessageTypeAck || a2.MessageType() != dhcpv4.MessageTypeAck || !a2.YourIPAddr.Equal(o1.YourIPAddr) {
		t.Fatalf("duplicate REQUEST: %v then %v", a1.Summary(), a2.Summary())
	}
	if ls, _ := store.Leases(); len(ls) != 1 || ls[0].IP.String() != o1.YourIPAddr.String() {
		t.Errorf("stored leases = %+v, want one for %v", ls, o1.YourIPAddr)
	}
	if st := l.stats(func(st Stats) bool { return !(st.Offers != 3 || st.Acks != 2 || st.PoolExhausted != 1) }); st.Offers != 3 || st.Acks != 2 || st.PoolExhausted != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A client that chose another server's offer (REQUEST naming that
// server): no answer, and the address we offered is free at once.
func TestFullRequestForAnotherServerReleasesOffer(t *testing.T) {
	l := startLab(t, oneAddress(testConfig(ModeFull)), newTestClock().hook())
	disc := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	o := l.expect(l.dhcp, disc)
	l.expectNothing(l.dhcp, withMAC(disc, 2).ToBytes()) // the only address is on offer
	req := requestFor(disc, o)
	req.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))
	l.expectNothing(l.dhcp, req.ToBytes())
	// No clock change: the release, not the offer's lapse, freed it.
	if o2 := l.expect(l.dhcp, withMAC(disc, 2)); !o2.YourIPAddr.Equal(o.YourIPAddr) {
		t.Errorf("after the REQUEST for another server: offered %v, want the released %v", o2.YourIPAddr, o.YourIPAddr)
	}
	if st := l.stats(func(st Stats) bool { return !(st.Ignored != 1 || st.PoolExhausted != 1) }); st.Ignored != 1 || st.PoolExhausted != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A client that DISCOVERs and vanishes holds its offer for offerHold;
// then the address goes back to the pool, and the vanished client's late
// REQUEST for it is refused.
func TestFullAbandonedOfferLapses(t *testing.T) {
	clk := newTestClock()
	l := startLab(t, oneAddress(testConfig(ModeFull)), clk.hook())
	gone := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	o := l.expect(l.dhcp, gone)
	next := withMAC(gone, 2)
	l.expectNothing(l.dhcp, next.ToBytes())
	clk.add(offerHold - time.Second)
	l.expectNothing(l.dhcp, next.ToBytes())
	clk.add(2 * time.Second)
	o2 := l.expect(l.dhcp, next)
	if !o2.YourIPAddr.Equal(o.YourIPAddr) {
		t.Fatalf("after the hold: offered %v, want %v", o2.YourIPAddr, o.YourIPAddr)
	}
	if r := l.expect(l.dhcp, requestFor(gone, o)); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("late REQUEST of the vanished client: %v", r.Summary())
	}
	if a := l.expect(l.dhcp, requestFor(next, o2)); a.MessageType() != dhcpv4.MessageTypeAck || !a.YourIPAddr.Equal(o.YourIPAddr) {
		t.Errorf("new client's REQUEST: %v", a.Summary())
	}
	if st := l.stats(func(st Stats) bool { return !(st.PoolExhausted != 2 || st.Naks != 1) }); st.PoolExhausted != 2 || st.Naks != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// loopConfig is testConfig on loopback: a client can send from any
// address of the range (a RELEASE from its leased address) and a relay
// can listen on one.
func loopConfig() Config {
	cfg := testConfig(ModeFull)
	cfg.ServerIP = net.IPv4(127, 0, 0, 1)
	cfg.Ranges = []Range{{Start: netip.MustParseAddr("127.0.0.100"), End: netip.MustParseAddr("127.0.0.199"),
		Subnet: netip.MustParsePrefix("127.0.0.0/8")}}
	return cfg
}

// A relay agent on the local subnet listed in TrustedRelays gets the
// replies at giaddr:67 (here another loopback address and the relayPort
// hook); an unlisted one on the subnet, and a listed one on a subnet no
// range serves, are dropped and counted. (A relay on a relayed range's
// subnet is served: TestFullRelayedSubnets.)
func TestFullRelay(t *testing.T) {
	cfg := loopConfig()
	cfg.TrustedRelays = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.1.2.0/24")}
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	l := startLab(t, cfg, func(s *Server) { s.relayPort = relay.LocalAddr().(*net.UDPAddr).Port })
	fromRelay := func(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		if _, err := relay.WriteTo(req.ToBytes(), l.dhcp); err != nil {
			t.Fatal(err)
		}
		relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, _, err := relay.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no reply at the relay: %v", err)
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || r.TransactionID != req.TransactionID {
			t.Fatalf("reply at the relay: %v, %v", r, err)
		}
		return r
	}
	disc := loadPacket(t, "bios-pxe-relayed")
	disc.GatewayIPAddr = net.IPv4(127, 0, 0, 2).To4()
	o := fromRelay(disc)
	if o.MessageType() != dhcpv4.MessageTypeOffer || !o.GatewayIPAddr.Equal(disc.GatewayIPAddr) || o.BootFileName != "undionly.kpxe" ||
		!cfg.Ranges[0].holds(netip.AddrFrom4([4]byte(o.YourIPAddr.To4()))) {
		t.Fatalf("relayed offer: %v", o.Summary())
	}
	if a := fromRelay(requestFor(disc, o)); a.MessageType() != dhcpv4.MessageTypeAck || !a.YourIPAddr.Equal(o.YourIPAddr) {
		t.Fatalf("relayed ack: %v", a.Summary())
	}
	// Nothing reached the client's broadcast socket; a trusted relay on
	// another subnet (giaddr 10.1.2.1) gets nothing, nor an untrusted one
	// on the served subnet (the client's own socket, as giaddr).
	if r := l.recv(100 * time.Millisecond); r != nil {
		t.Errorf("relayed reply broadcast to the client: %v", r.Summary())
	}
	l.expectNothing(l.dhcp, loadHex(t, "bios-pxe-relayed"))
	local := loadPacket(t, "bios-pxe-relayed")
	local.GatewayIPAddr = net.IPv4(127, 0, 0, 1).To4()
	l.expectNothing(l.dhcp, local.ToBytes())
	if st := l.stats(func(st Stats) bool { return !(st.RelayRefused != 2 || st.Offers != 1 || st.Acks != 1) }); st.RelayRefused != 2 || st.Offers != 1 || st.Acks != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// 2000 random MACs flood a 20-address pool. Unknown clients get their
// share (80 %, 16 addresses) and no more; known hosts without a
// reservation get the rest; hosts with a reservation get it, in the range
// or outside it, even with the pool exhausted; nobody else is offered a
// reserved address. The refusals are counted and warned about once.
func TestFullExhaustionKnownHostsServed(t *testing.T) {
	cfg := testConfig(ModeFull)
	cfg.Ranges[0].End = netip.MustParseAddr("192.168.77.119")
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	base := loadPacket(t, "nonpxe-discover")
	resIn, resOut := withMAC(base, 0xf1), withMAC(base, 0xf2)
	hosts.set(resIn.ClientHWAddr, "192.168.77.105")
	hosts.set(resOut.ClientHWAddr, "192.168.77.50")
	var known []*dhcpv4.DHCPv4
	for i := byte(0xe0); i < 0xe4; i++ {
		known = append(known, withMAC(base, i))
		hosts.set(known[len(known)-1].ClientHWAddr, "")
	}
	logs := &testbuf.Buffer{}
	l := startLab(t, cfg, newTestClock().hook(), func(s *Server) { s.log = zerolog.New(logs).Level(zerolog.WarnLevel) })

	const flood = 2000
	offered := map[string]int{}
	for i := 0; i < flood; i += 100 {
		for j := i; j < i+100; j++ {
			d := withMAC(base, 0)
			d.ClientHWAddr = net.HardwareAddr{0x02, 0xfe, byte(j >> 16), byte(j >> 8), byte(j), 0x01}
			d.TransactionID = dhcpv4.TransactionID{0xfe, byte(j >> 16), byte(j >> 8), byte(j)}
			if j%10 == 0 { // some ask for the reserved address by option 50
				d.UpdateOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 77, 105)))
			}
			l.send(l.dhcp, d.ToBytes())
		}
		// Pace the flood so the kernel drops nothing: every DISCOVER
		// is read and decided before the next batch.
		l.stats(func(st Stats) bool { return st.Received == uint64(i+100) })
		for {
			r := l.recv(20 * time.Millisecond)
			if r == nil {
				break
			}
			offered[r.YourIPAddr.String()]++
		}
	}
	st := l.stats(func(st Stats) bool {
		return !(st.Offers != 16 || st.UnknownCapped != flood-16 || st.PoolExhausted != 0)
	})
	if len(offered) != 16 || st.Offers != 16 || st.UnknownCapped != flood-16 || st.PoolExhausted != 0 {
		t.Fatalf("flood: %d offers to %d addresses %v; stats %+v", st.Offers, len(offered), offered, st)
	}
	if offered["192.168.77.105"] != 0 {
		t.Fatalf("reserved address offered to a stranger")
	}

	// Known hosts get the three addresses left (20 − 16 − 1 reserved);
	// the fourth finds the pool exhausted.
	for _, k := range known[:3] {
		o := l.expect(l.dhcp, k)
		if offered[o.YourIPAddr.String()] != 0 || o.YourIPAddr.Equal(net.IPv4(192, 168, 77, 105)) {
			t.Errorf("known host %v offered %v, already offered or reserved", k.ClientHWAddr, o.YourIPAddr)
		}
		offered[o.YourIPAddr.String()]++
	}
	l.expectNothing(l.dhcp, known[3].ToBytes())

	// Reserved hosts get their address, DORA, with the pool exhausted.
	for _, tt := range []struct {
		d  *dhcpv4.DHCPv4
		ip string
	}{{resIn, "192.168.77.105"}, {resOut, "192.168.77.50"}} {
		o := l.expect(l.dhcp, tt.d)
		if o.MessageType() != dhcpv4.MessageTypeOffer || o.YourIPAddr.String() != tt.ip {
			t.Fatalf("reserved host %v: %v, want %s", tt.d.ClientHWAddr, o.Summary(), tt.ip)
		}
		if a := l.expect(l.dhcp, requestFor(tt.d, o)); a.MessageType() != dhcpv4.MessageTypeAck || a.YourIPAddr.String() != tt.ip {
			t.Fatalf("reserved host %v REQUEST: %v", tt.d.ClientHWAddr, a.Summary())
		}
	}
	// A stranger asking for a reserved address by INIT-REBOOT is refused.
	thief := withMAC(base, 0x77)
	thief.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	thief.UpdateOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 77, 50)))
	if r := l.expect(l.dhcp, thief); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("stranger's REQUEST for a reserved address: %v", r.Summary())
	}
	// The counters move just after the reply is sent: wait for both.
	st = l.stats(func(st Stats) bool { return !(st.PoolExhausted != 1 || st.Acks != 2 || st.Naks != 1) })
	if st.PoolExhausted != 1 || st.Acks != 2 || st.Naks != 1 {
		t.Errorf("stats = %+v", st)
	}
	// One warning for the whole flood (rate-limited), one for the exhausted pool.
	if n, m := strings.Count(logs.String(), "hold their share of the pool"), strings.Count(logs.String(), "address pool exhausted"); n != 1 || m != 0 {
		t.Errorf("warnings: %d unknown-share, %d exhausted; want 1 and 0 (the second comes within the minute)", n, m)
	}
}

// An address reserved after another client leased it: that client keeps
// it until its next REQUEST, which is NAKed; meanwhile the reserved host
// is served from the pool, and at its next DISCOVER gets its reservation.
func TestFullReservationOfLeasedAddress(t *testing.T) {
	cfg := testConfig(ModeFull)
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	l := startLab(t, cfg, newTestClock().hook())
	base := loadPacket(t, "nonpxe-discover")
	holder, owner := withMAC(base, 1), withMAC(base, 2)
	hosts.set(holder.ClientHWAddr, "")
	o := l.expect(l.dhcp, holder)
	l.expect(l.dhcp, requestFor(holder, o))
	hosts.set(owner.ClientHWAddr, o.YourIPAddr.String())

	o2 := l.expect(l.dhcp, owner)
	if o2.YourIPAddr.Equal(o.YourIPAddr) {
		t.Fatalf("reserved address %v offered while another client's lease is live", o.YourIPAddr)
	}
	renew, _ := dhcpv4.FromBytes(holder.ToBytes())
	renew.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	renew.ClientIPAddr = o.YourIPAddr
	if r := l.expect(l.dhcp, renew); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("renewal of an address reserved for another host: %v", r.Summary())
	}
	if o3 := l.expect(l.dhcp, owner); !o3.YourIPAddr.Equal(o.YourIPAddr) {
		t.Fatalf("after the holder's NAK the reserved host got %v, want %v", o3.YourIPAddr, o.YourIPAddr)
	}
	if o4 := l.expect(l.dhcp, holder); o4.YourIPAddr.Equal(o.YourIPAddr) {
		t.Errorf("former holder offered the reserved address again")
	}
	if st := l.stats(func(st Stats) bool { return !(st.ReservationsBlocked != 1) }); st.ReservationsBlocked != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A reservation outside the served subnet cannot be handed out: the host
// is served from the pool, with a warning.
func TestFullReservationOutsideSubnet(t *testing.T) {
	cfg := testConfig(ModeFull)
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	l := startLab(t, cfg)
	for i, bad := range []string{"10.9.9.9", "192.168.77.1", "192.168.77.255", "192.168.77.0"} {
		d := withMAC(loadPacket(t, "nonpxe-discover"), byte(i+1))
		hosts.set(d.ClientHWAddr, bad)
		o := l.expect(l.dhcp, d)
		if a := netip.AddrFrom4([4]byte(o.YourIPAddr.To4())); !cfg.Ranges[0].holds(a) {
			t.Errorf("reservation %s: offered %v, want a pool address", bad, a)
		}
	}
	if st := l.stats(func(st Stats) bool { return !(st.ReservationsBlocked != 4) }); st.ReservationsBlocked != 4 {
		t.Errorf("stats = %+v", st)
	}
}

// A reservation outside the range has no pool slot: its lease lives only
// in the store, and a RELEASE removes it there.
func TestFullReservationOutsideRangeRelease(t *testing.T) {
	store := &MemLeases{}
	cfg := loopConfig()
	cfg.Leases = store
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	l := startLab(t, cfg)
	d := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	hosts.set(d.ClientHWAddr, "127.0.0.50")
	o := l.expect(l.dhcp, d)
	if a := l.expect(l.dhcp, requestFor(d, o)); a.MessageType() != dhcpv4.MessageTypeAck || a.YourIPAddr.String() != "127.0.0.50" {
		t.Fatalf("reserved DORA: %v", a.Summary())
	}
	if ls, ok := store.Lease(d.ClientHWAddr); !ok || ls.IP.String() != "127.0.0.50" {
		t.Fatalf("stored lease = %+v, %v", ls, ok)
	}
	l.sendFrom(o.YourIPAddr, l.dhcp, releaseOf(d, o.YourIPAddr, cfg.ServerIP))
	if st := l.stats(func(st Stats) bool { return !(st.Releases != 1) }); st.Releases != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok := store.Lease(d.ClientHWAddr); ok {
		t.Error("lease still stored after RELEASE")
	}
}

// At start, a stored lease on an address since reserved for another host
// is not restored: the reserved host gets its address at once, and the
// former holder's INIT-REBOOT for it is NAKed.
func TestFullRestartDropsLeaseOnReservedAddress(t *testing.T) {
	store := &MemLeases{}
	base := loadPacket(t, "nonpxe-discover")
	holder, owner := withMAC(base, 1), withMAC(base, 2)
	store.PutLease(Lease{MAC: holder.ClientHWAddr, IP: netip.MustParseAddr("192.168.77.120"), Expiry: time.Now().Add(time.Hour)})
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	hosts := &fakeHosts{}
	hosts.set(owner.ClientHWAddr, "192.168.77.120")
	cfg.Hosts = hosts
	l := startLab(t, cfg)
	if o := l.expect(l.dhcp, owner); o.YourIPAddr.String() != "192.168.77.120" {
		t.Fatalf("reserved host after restart: %v", o.Summary())
	}
	reboot, _ := dhcpv4.FromBytes(holder.ToBytes())
	reboot.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	reboot.UpdateOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 77, 120)))
	if r := l.expect(l.dhcp, reboot); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("former holder's INIT-REBOOT: %v", r.Summary())
	}
}
