package dhcp

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"
)

// sinkConn is a PacketConn that keeps the last packet written, so
// benchmarks measure the server's work and not the kernel's.
type sinkConn struct {
	net.PacketConn
	last []byte
}

func (c *sinkConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.last = append(c.last[:0], b...)
	return len(b), nil
}

func (c *sinkConn) reply(tb testing.TB) *dhcpv4.DHCPv4 {
	p, err := dhcpv4.FromBytes(c.last)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func handleBytes(s *Server, conn net.PacketConn, b []byte, port int) {
	p := packets.Get().(*packet)
	n := copy(p.buf[:], b)
	p.src = &net.UDPAddr{IP: net.IPv4(192, 168, 77, 50), Port: 68}
	log := zerolog.Nop()
	if s.parse(p, n, &log) {
		s.answer(conn, p.req, &p.c, p.src, port, false, &log, nil)
	}
	s.recycle(p)
}

func BenchmarkClassify(b *testing.B) {
	raw := loadHex(b, "qemu-ovmf-pxe-discover")
	b.ReportAllocs()
	for b.Loop() {
		p, err := dhcpv4.FromBytes(raw)
		if err != nil {
			b.Fatal(err)
		}
		if c, err := Classify(p); err != nil || !c.Bootable() {
			b.Fatal(c, err)
		}
	}
}

func BenchmarkProxyOffer(b *testing.B) {
	s, err := NewServer(testConfig(ModeProxy))
	if err != nil {
		b.Fatal(err)
	}
	raw := loadHex(b, "bios-pxe-discover")
	conn := &sinkConn{}
	b.ReportAllocs()
	for b.Loop() {
		handleBytes(s, conn, raw, ServerPort)
	}
	if r := conn.reply(b); r.BootFileName != "undionly.kpxe" || s.Stats().Offers == 0 {
		b.Fatalf("no offer: %v", r.Summary())
	}
}

// BenchmarkFullDORA: one DISCOVER and one REQUEST per iteration, 50 000
// distinct clients round robin, leases in MemLeases.
func BenchmarkFullDORA(b *testing.B) {
	cfg := testConfig(ModeFull)
	cfg.ServerIP = net.IPv4(10, 0, 0, 1)
	cfg.Ranges = []Range{{Start: netip.MustParseAddr("10.0.1.0"), End: netip.MustParseAddr("10.0.255.254"),
		Subnet: netip.MustParsePrefix("10.0.0.0/16")}}
	store := &MemLeases{}
	cfg.Leases = store
	s, err := NewServer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const clients = 50000
	base := loadPacket(b, "bios-pxe-discover")
	discs := make([][]byte, clients)
	reqs := make([][]byte, clients)
	for i := range clients {
		d, _ := dhcpv4.FromBytes(base.ToBytes())
		d.ClientHWAddr = net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		discs[i] = d.ToBytes()
		r, _ := dhcpv4.FromBytes(discs[i])
		r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
		r.UpdateOption(dhcpv4.OptServerIdentifier(cfg.ServerIP))
		reqs[i] = r.ToBytes() // option 50 is added per iteration below
	}
	conn := &sinkConn{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % clients
		i++
		handleBytes(s, conn, discs[k], ServerPort)
		offer := conn.last
		// yiaddr is at offset 16; REQUEST it in option 50.
		handleBytes(s, conn, withOpt50(reqs[k], offer[16:20]), ServerPort)
	}
	b.StopTimer()
	if r := conn.reply(b); r.MessageType() != dhcpv4.MessageTypeAck {
		b.Fatalf("last reply: %v", r.Summary())
	}
	if st := s.Stats(); st.Acks == 0 || st.Naks != 0 {
		b.Fatalf("stats = %+v", st)
	}
}

// withOpt50 inserts option 50 right after the magic cookie.
func withOpt50(p []byte, ip []byte) []byte {
	out := make([]byte, 0, len(p)+6)
	out = append(out, p[:240]...)
	out = append(out, 50, 4, ip[0], ip[1], ip[2], ip[3])
	return append(out, p[240:]...)
}
