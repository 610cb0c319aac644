package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/ipxe"
)

// lab is a Server on loopback sockets and a client socket that receives
// its broadcasts.
type lab struct {
	t         *testing.T
	s         *Server
	dhcp      net.Addr // the server's "port 67" socket
	discovery net.Addr // the server's "port 4011" socket
	client    *net.UDPConn
	mu        sync.Mutex
	replies   []Reply
}

// startLab serves cfg on loopback. OnReplies records replies unless cfg
// has its own; tweaks adjust the server's test hooks before it serves.
func startLab(t *testing.T, cfg Config, tweaks ...func(*Server)) *lab {
	t.Helper()
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	l := &lab{t: t}
	if cfg.OnReplies == nil {
		cfg.OnReplies = func(rs []Reply) {
			l.mu.Lock()
			l.replies = append(l.replies, rs...)
			l.mu.Unlock()
		}
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.s = s
	for _, f := range tweaks {
		f(s)
	}
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	l.client = client
	s.bcast = client.LocalAddr().(*net.UDPAddr)
	dconn := l.listen()
	s.discoveryPort = dconn.LocalAddr().(*net.UDPAddr).Port
	conn := l.listen()
	l.dhcp, l.discovery = conn.LocalAddr(), dconn.LocalAddr()
	l.serve(conn)
	l.serve(dconn)
	return l
}

func (l *lab) listen() net.PacketConn {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// serve runs Serve until the test ends and checks it returns nil.
func (l *lab) serve(conn net.PacketConn) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.s.Serve(ctx, conn) }()
	l.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			l.t.Errorf("Serve returned %v, want nil", err)
		}
	})
}

func (l *lab) send(to net.Addr, b []byte) {
	l.t.Helper()
	if _, err := l.client.WriteTo(b, to); err != nil {
		l.t.Fatal(err)
	}
}

// recv returns the next reply, or nil when none comes within wait.
func (l *lab) recv(wait time.Duration) *dhcpv4.DHCPv4 {
	l.t.Helper()
	buf := make([]byte, 2048)
	l.client.SetReadDeadline(time.Now().Add(wait))
	n, _, err := l.client.ReadFrom(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		l.t.Fatal(err)
	}
	p, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		l.t.Fatalf("reply does not parse: %v", err)
	}
	return p
}

// expect sends req and returns the reply, failing if none comes.
func (l *lab) expect(to net.Addr, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	l.t.Helper()
	l.send(to, req.ToBytes())
	r := l.recv(5 * time.Second)
	if r == nil {
		l.t.Fatalf("no reply to %v", req.MessageType())
	}
	if r.TransactionID != req.TransactionID {
		l.t.Fatalf("reply xid %v, want %v", r.TransactionID, req.TransactionID)
	}
	return r
}

// expectNothing sends req and checks no reply comes within a short wait.
func (l *lab) expectNothing(to net.Addr, req []byte) {
	l.t.Helper()
	l.send(to, req)
	if r := l.recv(300 * time.Millisecond); r != nil {
		l.t.Fatalf("unexpected reply: %v", r.Summary())
	}
}

// stats returns the server's counters once ok accepts them, or after a
// few seconds: a reply reaches the client before the worker counts it.
func (l *lab) stats(ok func(Stats) bool) Stats {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := l.s.Stats()
		if ok(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *lab) onReply() []Reply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Reply(nil), l.replies...)
}

// withMAC is a copy of p for another client.
func withMAC(p *dhcpv4.DHCPv4, last byte) *dhcpv4.DHCPv4 {
	q, _ := dhcpv4.FromBytes(p.ToBytes())
	q.ClientHWAddr = net.HardwareAddr{0x52, 0x54, 0x00, 0xbb, 0x00, last}
	q.TransactionID = dhcpv4.TransactionID{0xbb, 0, 0, last}
	return q
}

// requestFor is a SELECTING-state REQUEST answering offer.
func requestFor(discover, offer *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	r, _ := dhcpv4.FromBytes(discover.ToBytes())
	r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	r.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	r.UpdateOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier()))
	return r
}

func TestProxyDiscoverOffer(t *testing.T) {
	l := startLab(t, testConfig(ModeProxy))
	for _, tt := range []struct{ packet, file string }{
		{"bios-pxe-discover", "undionly.kpxe"},
		{"qemu-ovmf-pxe-discover", "snponly.efi"},
		{"qemu-bios-ipxe-discover", "http://192.168.77.1:8080/boot.ipxe"},
		{"http-boot-discover", "http://192.168.77.1:8080/tftp/snponly.efi"},
	} {
		req := loadPacket(t, tt.packet)
		r := l.expect(l.dhcp, req)
		if r.MessageType() != dhcpv4.MessageTypeOffer || !r.YourIPAddr.IsUnspecified() || r.BootFileName != tt.file ||
			!r.ServerIdentifier().Equal(net.IPv4(192, 168, 77, 1)) {
			t.Errorf("%s: reply %v", tt.packet, r.Summary())
		}
	}
	st := l.stats(func(st Stats) bool {
		return !(st.Offers != 4 || st.ByArch[ipxe.ArchBIOS] != 2 || st.ByArch[ipxe.ArchEFI64] != 1 || st.ByArch[ipxe.ArchEFI64HTTP] != 1)
	})
	if st.Offers != 4 || st.ByArch[ipxe.ArchBIOS] != 2 || st.ByArch[ipxe.ArchEFI64] != 1 || st.ByArch[ipxe.ArchEFI64HTTP] != 1 {
		t.Errorf("stats = %+v", st)
	}
	l.stats(func(Stats) bool { return len(l.onReply()) == 4 })
	// Find the BIOS client's.
	rs := l.onReply()
	var bios []Reply
	for _, r := range rs {
		if r.Client.MAC.String() == "52:54:00:aa:00:01" {
			bios = append(bios, r)
		}
	}
	if len(rs) != 4 || len(bios) != 1 || bios[0].Type != dhcpv4.MessageTypeOffer || bios[0].BootFile != "undionly.kpxe" ||
		bios[0].IP.IsValid() || bios[0].Client.Arch != ipxe.ArchBIOS {
		t.Errorf("OnReplies got %+v", rs)
	}
}

// OVMF after a proxy offer: DISCOVER on 67, then a REQUEST to 4011 with the
// address the site server gave it (docs/LAB.md).
func TestProxyBootServerRequest(t *testing.T) {
	l := startLab(t, testConfig(ModeProxy))
	disc := loadPacket(t, "qemu-ovmf-pxe-discover")
	if r := l.expect(l.dhcp, disc); r.BootFileName != "snponly.efi" {
		t.Fatalf("offer: %v", r.Summary())
	}
	req, _ := dhcpv4.FromBytes(disc.ToBytes())
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	req.ClientIPAddr = net.IPv4(192, 168, 77, 150).To4()
	req.Flags = 0
	r := l.expect(l.discovery, req)
	if r.MessageType() != dhcpv4.MessageTypeAck || r.BootFileName != "snponly.efi" || r.BootFileNameOption() != "snponly.efi" ||
		!r.YourIPAddr.IsUnspecified() || r.ClassIdentifier() != "PXEClient" {
		t.Errorf("4011 ack: %v", r.Summary())
	}
	// The constructed PXE 2.1 boot server request.
	if r := l.expect(l.discovery, loadPacket(t, "bios-pxe-request-4011")); r.MessageType() != dhcpv4.MessageTypeAck || r.BootFileName != "undionly.kpxe" {
		t.Errorf("4011 ack: %v", r.Summary())
	}
	// DISCOVER is not served on 4011.
	l.expectNothing(l.discovery, disc.ToBytes())
	l.stats(func(Stats) bool { return len(l.onReply()) == 3 })
	ports := map[int]int{}
	for _, r := range l.onReply() {
		ports[r.Port]++
	}
	if ports[l.s.discoveryPort] != 2 || len(ports) != 2 {
		t.Errorf("OnReplies ports = %v, want 2 replies from the discovery port %d", ports, l.s.discoveryPort)
	}
}

func TestProxyIgnores(t *testing.T) {
	cfg := testConfig(ModeProxy)
	refused := net.HardwareAddr{0x52, 0x54, 0x00, 0xbb, 0x00, 0x99}
	cfg.Policy = PolicyFunc(func(c *Client) bool { return c.MAC.String() != refused.String() })
	var (
		siteMu   sync.Mutex
		siteSeen []string
	)
	cfg.OnSiteAddress = func(mac net.HardwareAddr, a netip.Addr) {
		siteMu.Lock()
		siteSeen = append(siteSeen, mac.String()+" "+a.String())
		siteMu.Unlock()
	}
	l := startLab(t, cfg)
	l.expectNothing(l.dhcp, loadHex(t, "nonpxe-discover"))
	l.expectNothing(l.dhcp, loadHex(t, "arch22-discover"))
	l.expectNothing(l.dhcp, withMAC(loadPacket(t, "bios-pxe-discover"), 0x99).ToBytes())
	arm := loadPacket(t, "qemu-ovmf-pxe-discover")
	arm.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 11}))
	l.expectNothing(l.dhcp, arm.ToBytes())
	// A REQUEST accepting the site server's offer.
	site := loadPacket(t, "bios-pxe-discover")
	site.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	site.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))
	site.UpdateOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 77, 150)))
	l.expectNothing(l.dhcp, site.ToBytes())
	// The same REQUEST naming us gets the boot information.
	site.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 1)))
	if r := l.expect(l.dhcp, site); r.MessageType() != dhcpv4.MessageTypeAck || r.BootFileName != "undionly.kpxe" || !r.YourIPAddr.IsUnspecified() {
		t.Errorf("REQUEST to us: %v", r.Summary())
	}
	st := l.stats(func(st Stats) bool {
		return !(st.NonPXE != 1 || st.UnknownArch != 2 || st.Ignored != 2 || st.Offers != 0 || st.Acks != 1)
	})
	if st.NonPXE != 1 || st.UnknownArch != 2 || st.Ignored != 2 || st.Offers != 0 || st.Acks != 1 {
		t.Errorf("stats = %+v", st)
	}
	// The REQUEST to the site server told us the address the client
	// takes (the one naming us did not: it is ours to answer).
	siteMu.Lock()
	defer siteMu.Unlock()
	if len(siteSeen) != 1 || siteSeen[0] != "52:54:00:aa:00:01 192.168.77.150" {
		t.Errorf("OnSiteAddress got %q, want the BIOS client's 192.168.77.150", siteSeen)
	}
}

func TestMalformedPackets(t *testing.T) {
	l := startLab(t, testConfig(ModeProxy))
	big := make([]byte, 1600)
	copy(big, loadHex(t, "bios-pxe-discover"))
	for _, b := range [][]byte{
		loadHex(t, "malformed-truncated"), loadHex(t, "malformed-cookie"), loadHex(t, "malformed-optlen"),
		loadHex(t, "bootp-request"), big, {}, {0xff},
	} {
		l.expectNothing(l.dhcp, b)
	}
	// Still serving.
	if r := l.expect(l.dhcp, loadPacket(t, "bios-pxe-discover")); r.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("after garbage: %v", r.Summary())
	}
	if st := l.stats(func(st Stats) bool { return !(st.Malformed != 7 || st.Offers != 1 || st.Received != 8) }); st.Malformed != 7 || st.Offers != 1 || st.Received != 8 {
		t.Errorf("stats = %+v", st)
	}
}

// orderStore records when leases become durable, to check the ACK waits.
type orderStore struct {
	MemLeases
	mu     sync.Mutex
	events []string
	fail   bool
}

func (s *orderStore) event(e string) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

func (s *orderStore) PutLease(l Lease) error {
	// A slow disk: an ACK sent before the write finished would reach the
	// client first.
	time.Sleep(50 * time.Millisecond)
	if s.fail {
		return errors.New("disk full")
	}
	if err := s.MemLeases.PutLease(l); err != nil {
		return err
	}
	s.event("stored " + l.IP.String())
	return nil
}

func TestFullDORA(t *testing.T) {
	store := &orderStore{}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	l := startLab(t, cfg)
	disc := loadPacket(t, "bios-pxe-discover")
	offer := l.expect(l.dhcp, disc)
	ip, _ := netip.AddrFromSlice(offer.YourIPAddr.To4())
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !ip.IsValid() || !cfg.Ranges[0].holds(ip) ||
		offer.BootFileName != "undionly.kpxe" || offer.IPAddressLeaseTime(0) != 2*time.Hour {
		t.Fatalf("offer: %v", offer.Summary())
	}
	if _, ok := store.Lease(disc.ClientHWAddr); ok {
		t.Fatal("lease stored at OFFER")
	}
	ack := l.expect(l.dhcp, requestFor(disc, offer))
	store.event("ack " + ack.YourIPAddr.String())
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) || ack.BootFileName != "undionly.kpxe" {
		t.Fatalf("ack: %v", ack.Summary())
	}
	if got := store.events; len(got) != 2 || got[0] != "stored "+ip.String() || got[1] != "ack "+ip.String() {
		t.Errorf("events = %q, want the lease stored before the ACK", got)
	}
	lease, ok := store.Lease(disc.ClientHWAddr)
	if !ok || lease.IP != ip || time.Until(lease.Expiry) < time.Hour {
		t.Errorf("stored lease = %+v, %v", lease, ok)
	}
	// A second DISCOVER of the same client gets the same address.
	if again := l.expect(l.dhcp, disc); !again.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Errorf("second offer %v, want %v", again.YourIPAddr, offer.YourIPAddr)
	}
	// Non-PXE clients get an address and no boot options.
	np := loadPacket(t, "nonpxe-discover")
	o2 := l.expect(l.dhcp, np)
	if o2.YourIPAddr.Equal(offer.YourIPAddr) || o2.BootFileName != "" || o2.Options.Has(dhcpv4.OptionClassIdentifier) {
		t.Errorf("non-PXE offer: %v", o2.Summary())
	}
	a2 := l.expect(l.dhcp, requestFor(np, o2))
	if a2.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("non-PXE ack: %v", a2.Summary())
	}
	if l2, _ := store.Lease(np.ClientHWAddr); l2.Hostname != "rack1-node5" {
		t.Errorf("hostname not stored: %+v", l2)
	}
	st := l.stats(func(st Stats) bool {
		return !(st.Offers != 3 || st.Acks != 2 || st.ByArch[ipxe.ArchBIOS] != 3 || st.ByArch[ipxe.ArchUnknown] != 2)
	})
	if st.Offers != 3 || st.Acks != 2 || st.ByArch[ipxe.ArchBIOS] != 3 || st.ByArch[ipxe.ArchUnknown] != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFullStoreFailureNoAck(t *testing.T) {
	store := &orderStore{fail: true}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	l := startLab(t, cfg)
	disc := loadPacket(t, "qemu-ovmf-pxe-discover")
	offer := l.expect(l.dhcp, disc)
	l.expectNothing(l.dhcp, requestFor(disc, offer).ToBytes())
	if st := l.stats(func(st Stats) bool { return !(st.StoreErrors != 1 || st.Acks != 0) }); st.StoreErrors != 1 || st.Acks != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFullRestartKeepsLeases(t *testing.T) {
	store := &MemLeases{}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	disc := loadPacket(t, "qemu-ovmf-pxe-discover")
	var first net.IP
	t.Run("first run", func(t *testing.T) {
		l := startLab(t, cfg)
		offer := l.expect(l.dhcp, disc)
		ack := l.expect(l.dhcp, requestFor(disc, offer))
		first = ack.YourIPAddr
	})
	ls, _ := store.Leases()
	if len(ls) != 1 {
		t.Fatalf("stored leases = %+v", ls)
	}
	// Another client asks first after the restart, for the first
	// client's address by option 50: it must get another one.
	l := startLab(t, cfg)
	other := withMAC(disc, 1)
	other.UpdateOption(dhcpv4.OptRequestedIPAddress(first))
	if o := l.expect(l.dhcp, other); o.YourIPAddr.Equal(first) {
		t.Errorf("restarted server offered a leased address to another client")
	}
	if o := l.expect(l.dhcp, disc); !o.YourIPAddr.Equal(first) {
		t.Errorf("after restart offered %v, want %v", o.YourIPAddr, first)
	}
	// INIT-REBOOT with the remembered address: ACK without DISCOVER.
	reboot, _ := dhcpv4.FromBytes(disc.ToBytes())
	reboot.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	reboot.UpdateOption(dhcpv4.OptRequestedIPAddress(first))
	if a := l.expect(l.dhcp, reboot); a.MessageType() != dhcpv4.MessageTypeAck || !a.YourIPAddr.Equal(first) {
		t.Errorf("init-reboot: %v", a.Summary())
	}
}

func TestFullForeignRequestNak(t *testing.T) {
	l := startLab(t, testConfig(ModeFull))
	disc := loadPacket(t, "bios-pxe-discover")
	offer := l.expect(l.dhcp, disc)
	l.expect(l.dhcp, requestFor(disc, offer))
	// Another client claims the first one's address (INIT-REBOOT).
	thief := withMAC(disc, 2)
	thief.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	thief.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	if r := l.expect(l.dhcp, thief); r.MessageType() != dhcpv4.MessageTypeNak || !r.YourIPAddr.IsUnspecified() || r.BootFileName != "" {
		t.Errorf("foreign REQUEST: %v", r.Summary())
	}
	// An address from another network.
	away := withMAC(disc, 3)
	away.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	away.UpdateOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 9, 9, 9)))
	if r := l.expect(l.dhcp, away); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("REQUEST from another network: %v", r.Summary())
	}
	// SELECTING another server: silence, and our offer is forgotten.
	sel := withMAC(disc, 4)
	o := l.expect(l.dhcp, sel)
	req := requestFor(sel, o)
	req.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))
	l.expectNothing(l.dhcp, req.ToBytes())
	if st := l.stats(func(st Stats) bool { return !(st.Naks != 2 || st.Ignored != 1) }); st.Naks != 2 || st.Ignored != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFullPoolExhausted(t *testing.T) {
	cfg := testConfig(ModeFull)
	cfg.Ranges[0].End = netip.MustParseAddr("192.168.77.101")
	l := startLab(t, cfg)
	disc := loadPacket(t, "nonpxe-discover")
	seen := map[string]bool{}
	for i := byte(1); i <= 2; i++ {
		d := withMAC(disc, i)
		o := l.expect(l.dhcp, d)
		l.expect(l.dhcp, requestFor(d, o))
		seen[o.YourIPAddr.String()] = true
	}
	if !seen["192.168.77.100"] || !seen["192.168.77.101"] {
		t.Errorf("addresses = %v", seen)
	}
	l.expectNothing(l.dhcp, withMAC(disc, 3).ToBytes())
	l.expectNothing(l.dhcp, withMAC(disc, 4).ToBytes())
	if st := l.stats(func(st Stats) bool { return !(st.PoolExhausted != 2 || st.Offers != 2) }); st.PoolExhausted != 2 || st.Offers != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// releaseOf is the RELEASE of a by the client of d (RFC 2131 table 5:
// ciaddr is the address released).
func releaseOf(d *dhcpv4.DHCPv4, a, server net.IP) *dhcpv4.DHCPv4 {
	rel, _ := dhcpv4.FromBytes(d.ToBytes())
	rel.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRelease))
	rel.UpdateOption(dhcpv4.OptServerIdentifier(server))
	rel.ClientIPAddr = a
	return rel
}

// declineOf is the DECLINE of a by the client of d (option 50).
func declineOf(d *dhcpv4.DHCPv4, a, server net.IP) *dhcpv4.DHCPv4 {
	dec, _ := dhcpv4.FromBytes(d.ToBytes())
	dec.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeDecline))
	dec.UpdateOption(dhcpv4.OptServerIdentifier(server))
	dec.UpdateOption(dhcpv4.OptRequestedIPAddress(a))
	return dec
}

// sendFrom sends p to the server from a socket bound to src (a loopback
// address), as a client holding that address.
func (l *lab) sendFrom(src net.IP, to net.Addr, p *dhcpv4.DHCPv4) {
	l.t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src})
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo(p.ToBytes(), to); err != nil {
		l.t.Fatal(err)
	}
}

func TestFullReleaseDecline(t *testing.T) {
	store := &MemLeases{}
	cfg := loopConfig()
	cfg.Leases = store
	l := startLab(t, cfg)
	disc := loadPacket(t, "nonpxe-discover")
	o := l.expect(l.dhcp, disc)
	l.expect(l.dhcp, requestFor(disc, o))

	l.sendFrom(o.YourIPAddr, l.dhcp, releaseOf(disc, o.YourIPAddr, cfg.ServerIP))
	l.stats(func(st Stats) bool { return st.Releases == 1 })
	if _, ok := store.Lease(disc.ClientHWAddr); ok {
		t.Error("lease still stored after RELEASE")
	}

	// The client declines what it is offered next: the address is
	// quarantined and the next offer differs.
	o2 := l.expect(l.dhcp, disc)
	l.expectNothing(l.dhcp, declineOf(disc, o2.YourIPAddr, cfg.ServerIP).ToBytes())
	if o3 := l.expect(l.dhcp, disc); o3.YourIPAddr.Equal(o2.YourIPAddr) {
		t.Errorf("declined address %v offered again", o2.YourIPAddr)
	}
	if st := l.stats(func(st Stats) bool { return !(st.Releases != 1 || st.Declines != 1) }); st.Releases != 1 || st.Declines != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFullPolicyRefusesEverything(t *testing.T) {
	cfg := testConfig(ModeFull)
	cfg.Policy = PolicyFunc(func(*Client) bool { return false })
	l := startLab(t, cfg)
	l.expectNothing(l.dhcp, loadHex(t, "nonpxe-discover"))
	l.expectNothing(l.dhcp, loadHex(t, "bios-pxe-discover"))
	if st := l.stats(func(st Stats) bool { return !(st.Ignored != 2 || st.Offers != 0) }); st.Ignored != 2 || st.Offers != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestServeClosesOnCancel(t *testing.T) {
	s, err := NewServer(testConfig(ModeProxy))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, conn) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := conn.WriteTo([]byte{1}, conn.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("conn not closed: %v", err)
	}
}
