package dhcp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/testbuf"
)

func rng(s string, router string, dns ...string) Range {
	span, pfx, _ := strings.Cut(s, "/")
	a, b, _ := strings.Cut(span, "-")
	r := Range{Start: netip.MustParseAddr(a), End: netip.MustParseAddr(b)}
	r.Subnet = netip.PrefixFrom(r.Start, 24).Masked()
	if pfx != "" {
		r.Subnet = netip.MustParsePrefix(r.Start.String() + "/" + pfx).Masked()
	}
	if router != "" {
		r.Router = netip.MustParseAddr(router)
	}
	for _, d := range dns {
		r.DNS = append(r.DNS, netip.MustParseAddr(d))
	}
	return r
}

// Every refused configuration names the range (its index) and why; the
// ones a routed bench needs pass.
func TestCheckRanges(t *testing.T) {
	sip := netip.MustParseAddr("10.77.1.2")
	local := rng("10.77.1.100-10.77.1.199", "10.77.1.1")
	bench := rng("10.77.2.100-10.77.2.199", "10.77.2.1", "10.77.2.53")
	for _, ok := range [][]Range{
		{local},
		{bench},
		{local, bench},
		// Two ranges of one subnet, one router.
		{local, rng("10.77.1.210-10.77.1.220", "10.77.1.1"), bench},
		// A routed bench as large as /16, beside a /24 elsewhere.
		{rng("10.78.0.10-10.78.0.200/16", "10.78.0.1"), bench},
	} {
		if err := CheckRanges(ok, sip); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
	tests := []struct {
		name  string
		rs    []Range
		index int
		want  string
	}{
		{"overlapping ranges", []Range{bench, rng("10.77.2.150-10.77.2.160", "10.77.2.1", "10.77.2.53")}, 1, "overlaps the range"},
		{"same subnet, other router", []Range{bench, rng("10.77.2.200-10.77.2.210", "10.77.2.254", "10.77.2.53")}, 1, "another router"},
		{"same subnet, other DNS", []Range{bench, rng("10.77.2.200-10.77.2.210", "10.77.2.1")}, 1, "another router or DNS"},
		{"overlapping subnets", []Range{bench, rng("10.77.3.10-10.77.3.20/16", "10.77.0.1")}, 1, "overlaps the subnet"},
		{"start outside prefix", []Range{rng("10.77.1.250-10.77.2.10/24", "10.77.2.1")}, 0, "not inside its subnet"},
		{"end outside prefix", []Range{rng("10.77.2.100-10.77.3.10/24", "10.77.2.1")}, 0, "not inside its subnet"},
		{"network address inside", []Range{rng("10.77.2.0-10.77.2.10", "10.77.2.254")}, 0, "network or broadcast"},
		{"broadcast inside", []Range{rng("10.77.2.200-10.77.2.255", "10.77.2.1")}, 0, "network or broadcast"},
		{"router outside subnet", []Range{rng("10.77.2.100-10.77.2.199", "10.77.3.1")}, 0, "router 10.77.3.1 outside the subnet"},
		{"router inside range", []Range{rng("10.77.2.100-10.77.2.199", "10.77.2.150")}, 0, "inside the range"},
		{"server inside range", []Range{rng("10.77.1.1-10.77.1.99", "")}, 0, "server's own address"},
		{"start after end", []Range{rng("10.77.2.199-10.77.2.100", "10.77.2.1")}, 0, "before start"},
		{"prefix /31", []Range{rng("10.77.2.100-10.77.2.100/31", "")}, 0, "/31 outside /8../30"},
		{"prefix /7", []Range{rng("10.77.2.100-10.77.2.101/7", "")}, 0, "/7 outside"},
		{"IPv6", []Range{{Start: netip.MustParseAddr("fd00::1"), End: netip.MustParseAddr("fd00::9"), Subnet: netip.MustParsePrefix("fd00::/64")}}, 0, "IPv4"},
	}
	for _, tt := range tests {
		err := CheckRanges(tt.rs, sip)
		var re *RangeError
		if !errors.As(err, &re) || re.Index != tt.index || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want range %d refused with %q", tt.name, err, tt.index+1, tt.want)
		}
	}
	big := []Range{rng("10.0.0.1-10.0.255.254/16", ""), rng("10.1.0.1-10.1.0.10/16", "")}
	if err := CheckRanges(big, sip); err == nil || !strings.Contains(err.Error(), "more than 65536") {
		t.Errorf("ranges over the pool bound: %v", err)
	}
	if err := CheckRanges(nil, sip); err == nil {
		t.Error("no range accepted")
	}
}

// relayLab is a full-mode server at 127.0.0.1 serving its own
// 127.0.0.0/16 and two relayed subnets, 127.1.0.0/24 and 127.2.0.0/24,
// whose relay agents (127.1.0.1 and 127.2.0.1, on loopback like
// everything here) listen on one port that stands in for 67.
type relayLab struct {
	*lab
	relays map[string]*net.UDPConn // by giaddr
}

func relayConfig() Config {
	cfg := testConfig(ModeFull)
	cfg.ServerIP = net.IPv4(127, 0, 0, 1)
	cfg.Ranges = []Range{
		rng("127.0.0.100-127.0.0.199/16", "127.0.0.254"),
		rng("127.1.0.100-127.1.0.109/24", "127.1.0.1", "127.1.0.53"),
		rng("127.2.0.100-127.2.0.103/24", "127.2.0.1", "127.2.0.53", "127.2.0.54"),
	}
	return cfg
}

func startRelayLab(t *testing.T, cfg Config, tweaks ...func(*Server)) *relayLab {
	t.Helper()
	rl := &relayLab{relays: map[string]*net.UDPConn{}}
	port := 0
	for _, gi := range []string{"127.1.0.1", "127.2.0.1"} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(gi), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		port = c.LocalAddr().(*net.UDPAddr).Port
		rl.relays[gi] = c
	}
	rl.lab = startLab(t, cfg, append(tweaks, func(s *Server) { s.relayPort = port })...)
	return rl
}

// relayed sends req as the relay agent giaddr forwards it (a copy with
// giaddr set) and returns
// the reply the relay gets, or nil.
func (rl *relayLab) relayed(giaddr string, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	rl.t.Helper()
	r := rl.relays[giaddr]
	req, _ = dhcpv4.FromBytes(req.ToBytes()) // the caller's stays as the client sent it
	req.GatewayIPAddr = net.ParseIP(giaddr).To4()
	req.HopCount = 1
	if _, err := r.WriteTo(req.ToBytes(), rl.dhcp); err != nil {
		rl.t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	for {
		n, _, err := r.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if p, err := dhcpv4.FromBytes(buf[:n]); err == nil && p.TransactionID == req.TransactionID {
			return p
		}
	}
}

// dora runs DISCOVER and REQUEST through relay giaddr and returns the ACK.
func (rl *relayLab) dora(giaddr string, d *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	rl.t.Helper()
	o := rl.relayed(giaddr, d)
	if o == nil || o.MessageType() != dhcpv4.MessageTypeOffer {
		rl.t.Fatalf("DISCOVER via %s: %v", giaddr, o)
	}
	a := rl.relayed(giaddr, requestFor(d, o))
	if a == nil || a.MessageType() != dhcpv4.MessageTypeAck || !a.YourIPAddr.Equal(o.YourIPAddr) {
		rl.t.Fatalf("REQUEST via %s: %v", giaddr, a)
	}
	return a
}

// wantSubnet checks that a reply gives an address of r with r's options.
func wantSubnet(t *testing.T, what string, p *dhcpv4.DHCPv4, r Range) {
	t.Helper()
	y, _ := netip.AddrFromSlice(p.YourIPAddr.To4())
	var dns []netip.Addr
	for _, d := range p.DNS() {
		a, _ := netip.AddrFromSlice(d.To4())
		dns = append(dns, a)
	}
	var router netip.Addr
	if rs := p.Router(); len(rs) == 1 {
		router, _ = netip.AddrFromSlice(rs[0].To4())
	}
	if !r.holds(y) || !bytes.Equal(p.SubnetMask(), net.CIDRMask(r.Subnet.Bits(), 32)) || router != r.Router ||
		len(dns) != len(r.DNS) || (len(dns) > 0 && dns[0] != r.DNS[0]) {
		t.Errorf("%s: yiaddr %v, mask %v, router %v, dns %v; want an address of %v, router %v, dns %v",
			what, y, net.IP(p.SubnetMask()), router, dns, r, r.Router, r.DNS)
	}
}

// RFC 2131 §4.3.1: a relayed request is served from the range of the
// subnet holding giaddr, or the one RFC 3527's link selection names
// (replies still to giaddr:67, option 82 echoed), with that range's
// options 1, 3 and 6; a request from the local segment from the local
// range. A relay inside a relayed range's subnet needs no
// --dhcp-trusted-relays; a giaddr in no served subnet, and an unlisted
// one on the local subnet, are dropped and counted, the first with a
// warning naming it. On main every relayed request here was dropped.
func TestFullRelayedSubnets(t *testing.T) {
	cfg := relayConfig()
	store := &MemLeases{}
	cfg.Leases = store
	logs := &testbuf.Buffer{}
	rl := startRelayLab(t, cfg, func(s *Server) { s.log = zerolog.New(logs).Level(zerolog.WarnLevel) })
	local, bench1, bench2 := cfg.Ranges[0], cfg.Ranges[1], cfg.Ranges[2]
	base := loadPacket(t, "bios-pxe-discover")

	a := rl.dora("127.1.0.1", withMAC(base, 1))
	wantSubnet(t, "via 127.1.0.1", a, bench1)
	if !a.GatewayIPAddr.Equal(net.ParseIP("127.1.0.1")) || a.BootFileName != "undionly.kpxe" {
		t.Errorf("relayed ACK: %v", a.Summary())
	}
	if l, ok := store.Lease(a.ClientHWAddr); !ok || l.IP.String() != a.YourIPAddr.String() {
		t.Errorf("stored lease %+v, want %v", l, a.YourIPAddr)
	}

	// Link selection: relayed by 127.1.0.1, for a client on 127.2.0.0/24.
	ls := withMAC(base, 2)
	ls.UpdateOption(dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.AgentCircuitIDSubOption), []byte("port7")),
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.LinkSelectionSubOption), []byte{127, 2, 0, 0})))
	a = rl.dora("127.1.0.1", ls)
	wantSubnet(t, "link selection 127.2.0.0", a, bench2)
	if v := a.Options.Get(dhcpv4.OptionRelayAgentInformation); !bytes.Equal(v, ls.Options.Get(dhcpv4.OptionRelayAgentInformation)) {
		t.Errorf("option 82 = %x, want the relay's echoed", v)
	}

	// The local segment: the local range, broadcast.
	o := rl.expect(rl.dhcp, withMAC(base, 3))
	wantSubnet(t, "local", o, local)

	// Unservable relays: nothing anywhere.
	for _, gi := range []string{"127.3.0.1", "127.0.0.2"} {
		d := withMAC(base, 4)
		d.GatewayIPAddr = net.ParseIP(gi).To4()
		rl.sendFrom(net.ParseIP(gi), rl.dhcp, d)
	}
	if st := rl.stats(func(st Stats) bool { return st.RelayRefused == 2 }); st.RelayRefused != 2 || st.Offers != 3 || st.Acks != 2 {
		t.Errorf("stats = %+v", st)
	}
	if r := rl.recv(200 * time.Millisecond); r != nil {
		t.Errorf("reply at the client: %v", r.Summary())
	}
	if !strings.Contains(logs.String(), `"giaddr":"127.3.0.1"`) || strings.Count(logs.String(), "no range serves") != 1 {
		t.Errorf("warnings:\n%s", logs.String())
	}
}

// initRebootOf is the INIT-REBOOT REQUEST of the client of d for a
// (option 50, no server identifier, ciaddr 0).
func initRebootOf(d *dhcpv4.DHCPv4, a net.IP) *dhcpv4.DHCPv4 {
	r, _ := dhcpv4.FromBytes(d.ToBytes())
	r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	r.UpdateOption(dhcpv4.OptRequestedIPAddress(a))
	return r
}

// Reservations and the unknown-client share work per subnet: unknown
// MACs hold at most their share of a relayed range however much room
// the local one has; a host is given its reservation through the relay
// of its subnet, and from another subnet's relay an address of that
// subnet (an address is good only on its own link); a reservation on a
// router is never given. Refusals are counted and warned about.
func TestFullRelayedSharesAndReservations(t *testing.T) {
	cfg := relayConfig()
	hosts := &fakeHosts{}
	cfg.Hosts = hosts
	cfg.UnknownShare = 50 // 127.2.0.100-103: two addresses for strangers
	logs := &testbuf.Buffer{}
	rl := startRelayLab(t, cfg, func(s *Server) { s.log = zerolog.New(logs).Level(zerolog.WarnLevel) })
	local, bench1, bench2 := cfg.Ranges[0], cfg.Ranges[1], cfg.Ranges[2]
	base := loadPacket(t, "nonpxe-discover")

	for i := range byte(3) {
		o := rl.relayed("127.2.0.1", withMAC(base, 10+i))
		if i < 2 && (o == nil || !bench2.holds(netip.AddrFrom4([4]byte(o.YourIPAddr.To4())))) {
			t.Errorf("stranger %d via 127.2.0.1: %v", i, o)
		}
		if i == 2 && o != nil {
			t.Errorf("stranger over the relayed subnet's share offered %v", o.YourIPAddr)
		}
	}
	wantSubnet(t, "stranger on the local segment", rl.expect(rl.dhcp, withMAC(base, 13)), local)
	known := withMAC(base, 20)
	hosts.set(known.ClientHWAddr, "")
	wantSubnet(t, "known host over the strangers' share", rl.relayed("127.2.0.1", known), bench2)

	reserved := withMAC(base, 21)
	hosts.set(reserved.ClientHWAddr, "127.1.0.50")
	a := rl.dora("127.1.0.1", reserved)
	if !a.YourIPAddr.Equal(net.ParseIP("127.1.0.50")) {
		t.Errorf("reserved host via its subnet's relay got %v, want 127.1.0.50", a.YourIPAddr)
	}
	wantSubnet(t, "reservation's options", a, Range{Start: netip.MustParseAddr("127.1.0.50"), End: netip.MustParseAddr("127.1.0.50"),
		Subnet: bench1.Subnet, Router: bench1.Router, DNS: bench1.DNS})
	wantSubnet(t, "reserved host via another subnet's relay", rl.relayed("127.2.0.1", initRebootDiscover(reserved)), bench2)

	onRouter := withMAC(base, 22)
	hosts.set(onRouter.ClientHWAddr, "127.1.0.1")
	wantSubnet(t, "reservation on the router", rl.relayed("127.1.0.1", onRouter), bench1)

	if st := rl.stats(func(st Stats) bool { return st.ReservationsBlocked >= 2 }); st.UnknownCapped != 1 || st.ReservationsBlocked < 2 {
		t.Errorf("stats = %+v", st)
	}
	if !strings.Contains(logs.String(), "another subnet") {
		t.Errorf("no warning for the reservation on another subnet:\n%s", logs.String())
	}
}

// initRebootDiscover is d with a fresh transaction ID, so that a reply
// to it is told from earlier ones.
func initRebootDiscover(d *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	q, _ := dhcpv4.FromBytes(d.ToBytes())
	q.TransactionID[1]++
	return q
}

// A relayed lease is durable and stays on its subnet: its holder renews
// straight from its address (not relayed, RFC 2131 §4.3.2) and gets the
// ACK there with its subnet's options, and releases it the same way
// (§4.4.4); after a restart its INIT-REBOOT
// through the relay is ACKed and nobody else gets the address. A host
// moved to another relayed subnet gets an address there, the stored
// lease follows, and the old address is NAKed through the old relay.
func TestFullRelayedLeaseRestartAndMove(t *testing.T) {
	cfg := relayConfig()
	store := &MemLeases{}
	cfg.Leases = store
	bench1, bench2 := cfg.Ranges[1], cfg.Ranges[2]
	host := withMAC(loadPacket(t, "nonpxe-discover"), 1)
	var first net.IP
	t.Run("first run", func(t *testing.T) {
		rl := startRelayLab(t, cfg)
		first = rl.dora("127.1.0.1", host).YourIPAddr
		r := rl.renew(host, first)
		wantSubnet(t, "renewal from the relayed subnet", r, bench1)
		if r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(first) {
			t.Errorf("renewal: %v", r.Summary())
		}
		// A RELEASE, also sent straight from the address, frees it; the
		// host takes it again.
		rl.sendFrom(first, rl.dhcp, releaseOf(host, first, cfg.ServerIP))
		if st := rl.stats(func(st Stats) bool { return st.Releases == 1 }); st.Releases != 1 {
			t.Errorf("RELEASE from the relayed subnet: stats %+v", st)
		}
		if _, ok := store.Lease(host.ClientHWAddr); ok {
			t.Error("released lease still stored")
		}
		if a := rl.dora("127.1.0.1", host).YourIPAddr; !a.Equal(first) {
			t.Errorf("after its RELEASE the host got %v, want %v again", a, first)
		}
	})
	rl := startRelayLab(t, cfg)
	other := withMAC(host, 2)
	other.UpdateOption(dhcpv4.OptRequestedIPAddress(first))
	if o := rl.relayed("127.1.0.1", other); o == nil || o.YourIPAddr.Equal(first) {
		t.Errorf("after restart another client was offered %v: %v", first, o)
	}
	a := rl.relayed("127.1.0.1", initRebootOf(host, first))
	if a == nil || a.MessageType() != dhcpv4.MessageTypeAck || !a.YourIPAddr.Equal(first) {
		t.Fatalf("INIT-REBOOT through the relay after restart: %v", a)
	}
	wantSubnet(t, "INIT-REBOOT after restart", a, bench1)

	moved := rl.dora("127.2.0.1", initRebootDiscover(host))
	wantSubnet(t, "moved host", moved, bench2)
	if l, ok := store.Lease(host.ClientHWAddr); !ok || l.IP.String() != moved.YourIPAddr.String() {
		t.Errorf("stored lease after the move = %+v, want %v", l, moved.YourIPAddr)
	}
	if n := rl.relayed("127.1.0.1", initRebootOf(host, first)); n == nil || n.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("old address through the old relay: %v, want NAK", n)
	}
	if n := rl.relayed("127.1.0.1", initRebootOf(host, moved.YourIPAddr)); n == nil || n.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("new address through the old relay: %v, want NAK", n)
	}
	if _, held := rl.s.subnets[1].pool.byMAC[keyOf(host.ClientHWAddr)]; held {
		t.Error("the old subnet's pool still holds the moved host's address")
	}
}
