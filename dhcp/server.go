package dhcp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/internal/throttle"
	"github.com/stagehand-dev/stagehand/ipxe"
)

const (
	// maxPacket: a DHCP message larger than an Ethernet MTU is not one any
	// firmware sends (RFC 2131 §2: 576 unless option 57 says more).
	maxPacket = 1500
	// Full-mode worker goroutines per Serve and queued packets: bounded,
	// so a flood costs dropped packets (counted as Overload), not memory.
	// A worker answering a REQUEST waits until its lease is durable; the
	// store groups the writes in flight into one commit (one fsync), so
	// the number of workers bounds leases per commit and with it the ACK
	// rate (docs/bench/dhcp.md: 4 workers ~100 DORA/s, 128 ~4 000/s).
	fullWorkers = 128
	queueLen    = 256
	// OnReplies runs off the reply path, in one goroutine fed by a queue
	// of hookQueueLen replies, and gets what has queued since its last
	// call, up to hookBatch replies: a slow hook (a database commit) must
	// not throttle the replies, and one commit then records a whole burst.
	// When it falls a whole queue behind, replies go unreported (counted
	// as HooksDropped).
	hookQueueLen = 4096
	hookBatch    = 512
)

// Server answers DHCP requests. Create it with NewServer; run one Serve per
// socket. Safe for concurrent use.
type Server struct {
	cfg Config
	log zerolog.Logger
	rep *replier
	// subnets are full mode's ranges grouped by subnet; a request is
	// served from the one it comes from (selectSubnet).
	subnets []*subnet
	stats   counters

	// Unix nanos of the last rate-limited warnings.
	exhaustedWarn, reservationWarn, declineWarn, relayWarn throttle.Every

	// Hooks for tests, set before Serve: now is the clock; bcast replaces
	// 255.255.255.255:68 as the broadcast destination so replies can be
	// received on loopback; discoveryPort is the local port Serve treats
	// as PXE boot server discovery (4011); relayPort, if set, replaces
	// port 67 of relay agents (giaddr) so a test's relay needs no root.
	now           func() time.Time
	bcast         *net.UDPAddr
	discoveryPort int
	relayPort     int
	// hookQueue sizes OnReplies' queue.
	hookQueue int
}

// NewServer validates cfg, applies defaults and, in full mode, loads the
// stored leases.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.ServerIP = cfg.ServerIP.To4()
	s := &Server{
		cfg:           cfg,
		log:           cfg.Log,
		rep:           newReplier(&cfg),
		now:           time.Now,
		bcast:         &net.UDPAddr{IP: net.IPv4bcast, Port: ClientPort},
		discoveryPort: DiscoveryPort,
		hookQueue:     hookQueueLen,
	}
	if cfg.Mode == ModeFull {
		if err := s.loadLeases(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loadLeases builds the full-mode pools and binds the stored leases,
// each in the pool of the subnet its address is in (a lease records its
// address; the subnet follows from it, since subnets do not overlap).
func (s *Server) loadLeases() error {
	cfg := &s.cfg
	sip, _ := netip.AddrFromSlice(cfg.ServerIP)
	s.subnets = newSubnets(cfg.Ranges, sip)
	var skip, unknown func(Lease) bool
	if h := cfg.Hosts; h != nil {
		for _, sn := range s.subnets {
			sn.pool.limitUnknown(cfg.UnknownShare)
		}
		// A lease on an address since reserved for another host is
		// not restored: that host gets the address, and the lease's
		// holder is NAKed at its next REQUEST.
		skip = func(l Lease) bool {
			m := h.ReservedFor(l.IP)
			return m != nil && !bytes.Equal(m, l.MAC)
		}
		unknown = func(l Lease) bool { _, known := h.Lookup(l.MAC); return !known }
	}
	ls, err := cfg.Leases.Leases()
	if err != nil {
		return fmt.Errorf("dhcp: loading leases: %w", err)
	}
	bySubnet := make(map[*subnet][]Lease, len(s.subnets))
	for _, l := range ls {
		if sn := s.subnetOf(l.IP); sn != nil {
			bySubnet[sn] = append(bySubnet[sn], l)
		}
	}
	n := 0
	for _, sn := range s.subnets {
		n += sn.pool.load(bySubnet[sn], skip, unknown)
	}
	s.log.Info().Int("leases", n).Int("stored", len(ls)).Int("subnets", len(s.subnets)).Msg("dhcp: leases loaded")
	return nil
}

type packet struct {
	buf [2048]byte // larger than maxPacket, so oversize is detected, not truncated
	src net.Addr
	req *dhcpv4.DHCPv4 // parsed from buf; its options may alias buf
	c   Client
}

var packets = sync.Pool{New: func() any { return new(packet) }}

// Serve answers requests read from conn until ctx is done, then closes
// conn, waits for the packets in hand and returns nil. Only a socket error
// ends it early (returned). A conn whose local port is 4011 is a PXE boot
// server discovery socket: it answers REQUESTs with boot information only.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	port := 0
	if u, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		port = u.Port
	}
	discovery := port == s.discoveryPort
	log := s.log.With().Int("port", port).Logger()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var (
		notify chan Reply
		hwg    sync.WaitGroup
	)
	if f := s.cfg.OnReplies; f != nil {
		notify = make(chan Reply, s.hookQueue)
		hwg.Go(func() { reportReplies(notify, f) })
	}
	// Answers that never wait are sent from the read loop itself: read one,
	// answer one, read the next, as dnsmasq does. Handing each packet to a
	// worker let the reader drain the socket first and the workers then
	// answer in a burst, which cost latency and overflowed the client's
	// receive buffer (docs/bench/dhcp.md). Only full-mode messages that
	// write the lease store (REQUEST, RELEASE, DECLINE) go to workers,
	// where many wait on one group commit together.
	var (
		queue chan *packet
		wg    sync.WaitGroup
	)
	if s.cfg.Mode == ModeFull && !discovery {
		queue = make(chan *packet, queueLen)
		for range fullWorkers {
			wg.Go(func() {
				for p := range queue {
					s.answer(conn, p.req, &p.c, p.src, port, discovery, &log, notify)
					s.recycle(p)
				}
			})
		}
	}
	var err error
	for {
		p := packets.Get().(*packet)
		n, src, rerr := conn.ReadFrom(p.buf[:])
		if rerr != nil {
			packets.Put(p)
			if ctx.Err() == nil {
				err = fmt.Errorf("dhcp: read on port %d: %w", port, rerr)
			}
			break
		}
		s.stats.received.Add(1)
		p.src = src
		if !s.parse(p, n, &log) {
			s.recycle(p)
			continue
		}
		if queue == nil || !writesStore(p.c.MsgType) {
			s.answer(conn, p.req, &p.c, src, port, discovery, &log, notify)
			s.recycle(p)
			continue
		}
		select {
		case queue <- p:
		default:
			s.stats.overload.Add(1)
			s.recycle(p)
		}
	}
	if queue != nil {
		close(queue)
		wg.Wait()
	}
	if notify != nil {
		close(notify)
		hwg.Wait()
	}
	conn.Close()
	return err
}

// reportReplies calls f with the replies queued on notify, as many as have
// queued (up to hookBatch) per call, until notify is closed and drained.
func reportReplies(notify <-chan Reply, f func([]Reply)) {
	batch := make([]Reply, 0, hookBatch)
	for r := range notify {
		batch = append(batch[:0], r)
	more:
		for len(batch) < hookBatch {
			select {
			case r, ok := <-notify:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		f(batch)
	}
}

// writesStore reports whether answering a full-mode message of type t
// waits on the lease store.
func writesStore(t dhcpv4.MessageType) bool {
	switch t {
	case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		return true
	}
	return false
}

func (s *Server) recycle(p *packet) {
	p.src, p.req, p.c = nil, nil, Client{}
	packets.Put(p)
}

// parse decodes and classifies the n bytes in p. Bad input is counted and
// dropped here (false).
func (s *Server) parse(p *packet, n int, log *zerolog.Logger) bool {
	if n > maxPacket {
		s.stats.malformed.Add(1)
		log.Debug().Int("size", n).Stringer("src", p.src).Msg("dhcp: oversize packet dropped")
		return false
	}
	req, err := dhcpv4.FromBytes(p.buf[:n])
	if err != nil {
		s.stats.malformed.Add(1)
		log.Debug().Err(err).Stringer("src", p.src).Msg("dhcp: unparseable packet dropped")
		return false
	}
	c, err := Classify(req)
	if err != nil {
		s.stats.malformed.Add(1)
		log.Debug().Err(err).Stringer("src", p.src).Msg("dhcp: packet dropped")
		return false
	}
	p.req, p.c = req, c
	return true
}

// answer replies to one parsed request. Replies are reported on notify;
// with notify nil, OnReplies is called directly.
func (s *Server) answer(conn net.PacketConn, req *dhcpv4.DHCPv4, c *Client, src net.Addr, port int, discovery bool, log *zerolog.Logger, notify chan<- Reply) {
	x := exchange{s: s, conn: conn, req: req, c: c, src: src, port: port, discovery: discovery, log: log, notify: notify}
	if !x.relayTrusted() {
		return
	}
	switch {
	case discovery:
		x.bootServer()
	case s.cfg.Mode == ModeProxy:
		x.proxy()
	default:
		x.full()
	}
}

// exchange is one request being answered.
type exchange struct {
	s         *Server
	conn      net.PacketConn
	req       *dhcpv4.DHCPv4
	c         *Client
	src       net.Addr
	port      int
	discovery bool
	log       *zerolog.Logger
	notify    chan<- Reply
	sub       *subnet // full mode: the client's subnet (selectSubnet)
}

func (x *exchange) debug(msg string) {
	x.log.Debug().Stringer("mac", x.c.MAC).Stringer("xid", x.c.XID).Stringer("type", x.c.MsgType).
		Stringer("arch", x.c.Arch).Msg(msg)
}

func (x *exchange) ignore(msg string) {
	x.s.stats.ignored.Add(1)
	x.debug(msg)
}

// bootable reports whether the client gets boot options, counting and
// logging it as dropped when not.
func (x *exchange) bootable() bool {
	if _, ok := x.s.rep.bootFor(x.c); ok {
		return true
	}
	switch {
	case !x.c.PXE && !x.c.HTTPBoot && !x.c.IPXE:
		x.s.stats.nonPXE.Add(1)
		x.debug("dhcp: not a network-boot client, ignored")
	case x.c.Arch == ipxe.ArchARM64:
		x.s.stats.unknownArch.Add(1)
		x.debug("dhcp: ARM64 client ignored: no ARM64 iPXE binary configured (Debian's ipxe package has none)")
	default:
		x.s.stats.unknownArch.Add(1)
		x.debug("dhcp: unsupported client architecture, ignored")
	}
	return false
}

func (x *exchange) admit() bool {
	if p := x.s.cfg.Policy; p != nil && !p.Admit(x.c) {
		x.ignore("dhcp: refused by policy")
		return false
	}
	return true
}

// relayTrusted reports whether the request is from the local segment
// (no giaddr) or relayed by a trusted agent (trustedRelay), counting it
// when not: the reply goes to giaddr (RFC 2131 §4.1), an address any
// sender could otherwise choose.
func (x *exchange) relayTrusted() bool {
	r := x.c.Relay
	if r == nil {
		return true
	}
	a, _ := netip.AddrFromSlice(r)
	if x.s.trustedRelay(a) {
		return true
	}
	x.s.stats.relayRefused.Add(1)
	if x.s.cfg.Mode == ModeFull && x.s.subnetOf(a) == nil {
		// A relay the operator may have forgotten a range for.
		x.warnRelay(a, a, "dhcp: relayed from a subnet no range serves, dropped (add a --dhcp-range for it; a relay that sends link selection needs --dhcp-trusted-relays)")
		return false
	}
	x.debug("dhcp: relayed by an agent not in the trusted relays, dropped")
	return false
}

// warnRelay logs a dropped relayed request at most once per warnEvery:
// a stranger can send many.
func (x *exchange) warnRelay(giaddr, subnet netip.Addr, msg string) {
	if x.s.relayWarn.Allow(x.s.now(), warnEvery) {
		x.log.Warn().Stringer("giaddr", giaddr).Stringer("selects", subnet).Stringer("mac", x.c.MAC).
			Uint64("refused", x.s.stats.relayRefused.Load()).Msg(msg)
	}
}

func (x *exchange) ours() bool {
	sid := x.req.Options.Get(dhcpv4.OptionServerIdentifier)
	return len(sid) == 4 && net.IP(sid).Equal(x.s.cfg.ServerIP)
}

// bootServer answers PXE boot server discovery on port 4011 (PXE spec
// §2.2.6): a REQUEST from a client that has its address already.
func (x *exchange) bootServer() {
	if x.c.MsgType != dhcpv4.MessageTypeRequest {
		x.ignore("dhcp: only REQUEST is served on the discovery port")
		return
	}
	if !x.bootable() || !x.admit() {
		return
	}
	x.send(dhcpv4.MessageTypeAck, nil)
}

// proxy answers on port 67 beside a site DHCP server.
func (x *exchange) proxy() {
	switch x.c.MsgType {
	case dhcpv4.MessageTypeDiscover:
	case dhcpv4.MessageTypeRequest:
		// A REQUEST naming the site server accepts its address; we have
		// nothing to add. One naming us comes from firmware that took the
		// proxy offer as its server: give it the boot information.
		if !x.ours() {
			x.siteAddress()
			x.ignore("dhcp: REQUEST for another server")
			return
		}
	default:
		x.ignore("dhcp: message type not served in proxy mode")
		return
	}
	if !x.bootable() || !x.admit() {
		return
	}
	typ := dhcpv4.MessageTypeOffer
	if x.c.MsgType == dhcpv4.MessageTypeRequest {
		typ = dhcpv4.MessageTypeAck
	}
	x.send(typ, nil)
}

// siteAddress reports the address a network-boot client asks the site's
// DHCP server for (option 50 of its REQUEST) to OnSiteAddress: in proxy
// mode it is the only sight of the address the host will fetch its boot
// files from, which ties its TFTP transfer to its MAC.
//
// The Policy decides first: a MAC it refuses must not write the table,
// or a stranger ignored by the server could still overwrite the address
// of a host it serves.
func (x *exchange) siteAddress() {
	f := x.s.cfg.OnSiteAddress
	if f == nil || !(x.c.PXE || x.c.IPXE || x.c.HTTPBoot) {
		return
	}
	if p := x.s.cfg.Policy; p != nil && !p.Admit(x.c) {
		return
	}
	if a := optAddr(x.req, dhcpv4.OptionRequestedIPAddress); a.IsValid() && !a.IsUnspecified() {
		f(x.c.MAC, a)
	}
}

// send builds, sends and reports a reply; yiaddr is nil in proxy replies.
func (x *exchange) send(typ dhcpv4.MessageType, yiaddr net.IP) {
	var opts *leaseOpts
	if x.sub != nil {
		opts = &x.sub.opts
	}
	resp, file := x.s.rep.build(x.req, x.c, typ, yiaddr, opts)
	dst := replyAddr(x.req, typ, yiaddr, x.src, x.discovery, x.s.bcast)
	if x.s.relayPort != 0 && dst.Port == ServerPort {
		dst = &net.UDPAddr{IP: dst.IP, Port: x.s.relayPort}
	}
	if _, err := x.conn.WriteTo(resp.ToBytes(), dst); err != nil {
		x.s.stats.sendErrors.Add(1)
		x.log.Warn().Err(err).Stringer("dst", dst).Stringer("mac", x.c.MAC).Msg("dhcp: send failed")
		return
	}
	st := &x.s.stats
	switch typ {
	case dhcpv4.MessageTypeOffer:
		st.offers.Add(1)
	case dhcpv4.MessageTypeAck:
		st.acks.Add(1)
	case dhcpv4.MessageTypeNak:
		st.naks.Add(1)
	}
	st.countArch(x.c.Arch, file != "")
	if e := x.log.Debug(); e.Enabled() {
		if yiaddr != nil {
			e = e.IPAddr("yiaddr", yiaddr)
		}
		e.Stringer("mac", x.c.MAC).Stringer("xid", x.c.XID).Stringer("arch", x.c.Arch).
			Stringer("reply", typ).Str("file", file).Stringer("dst", dst).Msg("dhcp: reply sent")
	}
	if f := x.s.cfg.OnReplies; f != nil {
		r := Reply{Client: *x.c, Type: typ, BootFile: file, Port: x.port}
		if yiaddr != nil {
			r.IP, _ = netip.AddrFromSlice(yiaddr)
		}
		if x.notify == nil {
			f([]Reply{r})
			return
		}
		select {
		case x.notify <- r:
		default:
			x.s.stats.hooksDropped.Add(1)
		}
	}
}
