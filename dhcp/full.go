package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// warnEvery spaces out the warnings of a full pool, an unservable
// reservation and capped DECLINEs: each sees every retransmission of
// every client.
const warnEvery = time.Minute

// full answers on port 67 as the network's only DHCP server.
func (x *exchange) full() {
	if !x.selectSubnet() {
		return
	}
	switch x.c.MsgType {
	case dhcpv4.MessageTypeDiscover:
		if x.admit() {
			x.discover()
		}
	case dhcpv4.MessageTypeRequest:
		if x.admit() {
			x.request()
		}
	case dhcpv4.MessageTypeRelease:
		x.release()
	case dhcpv4.MessageTypeDecline:
		if x.admit() {
			x.decline()
		}
	default:
		x.ignore("dhcp: message type not served")
	}
}

func optAddr(req *dhcpv4.DHCPv4, code dhcpv4.OptionCode) netip.Addr {
	if v := req.Options.Get(code); len(v) == 4 {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

func ciaddr(req *dhcpv4.DHCPv4) netip.Addr {
	if ci := req.ClientIPAddr.To4(); ci != nil && !ci.IsUnspecified() {
		return netip.AddrFrom4([4]byte(ci))
	}
	return netip.Addr{}
}

// host is what Config.Hosts says of the client: known, and its usable
// reservation (invalid if none, or if it cannot be served on the
// client's subnet).
func (x *exchange) host() (reserved netip.Addr, known bool) {
	h := x.s.cfg.Hosts
	if h == nil {
		return netip.Addr{}, true
	}
	reserved, known = h.Lookup(x.c.MAC)
	if !reserved.IsValid() {
		return reserved, known
	}
	msg := ""
	switch {
	case !x.s.servable(reserved):
		msg = "dhcp: reserved address not servable (outside every range's subnet, the server's own, a router, network or broadcast); serving from the pool"
	case !x.sub.prefix.Contains(reserved):
		msg = "dhcp: reserved address is on another subnet than the request came from; serving from this subnet's pool"
	default:
		return reserved, known
	}
	x.s.stats.resBlocked.Add(1)
	if x.s.reservationWarn.Allow(x.s.now(), warnEvery) {
		x.log.Warn().Stringer("mac", x.c.MAC).Stringer("reserved", reserved).Stringer("subnet", x.sub.prefix).Msg(msg)
	}
	return netip.Addr{}, known
}

// reservedOutside reports whether a is the client's reservation outside
// the ranges: its lease has no pool slot, only a stored record.
func (x *exchange) reservedOutside(a netip.Addr) bool {
	r, _ := x.host()
	_, inRange := x.sub.pool.index(a)
	return r.IsValid() && r == a && !inRange
}

// servable reports whether a reserved address can be handed out on the
// subnet it is in: a served subnet, not its network or broadcast
// address, the server's address or a router.
func (s *Server) servable(a netip.Addr) bool {
	sn := s.subnetOf(a)
	if sn == nil || a == sn.prefix.Addr() || a == broadcast(sn.prefix) || a == sn.router {
		return false
	}
	sip, _ := netip.AddrFromSlice(s.cfg.ServerIP)
	return a != sip
}

// reservedElsewhere returns the pool's filter of addresses reserved for
// clients other than x's, or nil without Hosts.
func (x *exchange) reservedElsewhere() func(netip.Addr) bool {
	h := x.s.cfg.Hosts
	if h == nil {
		return nil
	}
	return func(a netip.Addr) bool {
		m := h.ReservedFor(a)
		return m != nil && !bytes.Equal(m, x.c.MAC)
	}
}

func (x *exchange) discover() {
	now := x.s.now()
	reserved, known := x.host()
	if reserved.IsValid() {
		if x.sub.pool.claim(x.c.MAC, reserved, now) {
			x.send(dhcpv4.MessageTypeOffer, reserved.AsSlice())
			return
		}
		x.s.stats.resBlocked.Add(1)
		if x.s.reservationWarn.Allow(now, warnEvery) {
			x.log.Warn().Stringer("mac", x.c.MAC).Stringer("reserved", reserved).
				Msg("dhcp: reserved address still leased to another client; serving from the pool until that lease ends or its holder renews")
		}
	}
	a, res := x.sub.pool.offerTo(ask{
		mac: x.c.MAC, requested: optAddr(x.req, dhcpv4.OptionRequestedIPAddress),
		unknown: !known, reservedElsewhere: x.reservedElsewhere(),
	}, now)
	switch res {
	case offerOK:
		x.send(dhcpv4.MessageTypeOffer, a.AsSlice())
	case offerUnknownCapped:
		x.s.stats.unknownCapped.Add(1)
		x.warnExhausted(now, "dhcp: unknown clients hold their share of the pool (--dhcp-unknown-share), their DISCOVERs go unanswered")
	default:
		x.s.stats.exhausted.Add(1)
		x.warnExhausted(now, "dhcp: address pool exhausted, DISCOVERs go unanswered")
	}
}

// warnExhausted logs msg at most once per warnEvery: a full pool
// sees every retransmission of every client.
func (x *exchange) warnExhausted(now time.Time, msg string) {
	if x.s.exhaustedWarn.Allow(now, warnEvery) {
		x.log.Warn().Stringer("mac", x.c.MAC).Uint64("exhausted", x.s.stats.exhausted.Load()).
			Uint64("unknownCapped", x.s.stats.unknownCapped.Load()).Msg(msg)
	}
}

// request handles the three kinds of REQUEST of RFC 2131 §4.3.2.
func (x *exchange) request() {
	var a netip.Addr
	switch {
	case x.req.Options.Has(dhcpv4.OptionServerIdentifier):
		// SELECTING: the client answers one of the offers it got.
		if !x.ours() {
			x.sub.pool.forget(x.c.MAC)
			x.ignore("dhcp: client selected another server")
			return
		}
		a = optAddr(x.req, dhcpv4.OptionRequestedIPAddress)
	case x.req.Options.Has(dhcpv4.OptionRequestedIPAddress):
		// INIT-REBOOT: the client checks the address it remembers.
		a = optAddr(x.req, dhcpv4.OptionRequestedIPAddress)
	default:
		// RENEWING / REBINDING.
		a = ciaddr(x.req)
	}
	now := x.s.now()
	reserved, known := x.host()
	if !x.admissible(a, reserved, now) {
		x.send(dhcpv4.MessageTypeNak, nil)
		return
	}
	l := Lease{MAC: slices.Clone(x.c.MAC), IP: a, Expiry: now.Add(x.s.cfg.LeaseTime), Hostname: x.c.Hostname}
	// Durable first: an ACK the server forgets after a crash would let it
	// hand the address to a second host.
	if err := x.s.cfg.Leases.PutLease(l); err != nil {
		x.s.stats.storeErrors.Add(1)
		x.log.Error().Err(err).Stringer("mac", x.c.MAC).Stringer("ip", a).Msg("dhcp: storing lease failed, no ACK sent")
		return
	}
	// A client probes (and may DECLINE) an address it is given, not one
	// it renews and has used all along (§4.4.1): a renewal's ACK opens
	// no declineWindow.
	acked := now
	if renewing(x.req) {
		acked = time.Time{}
	}
	x.sub.pool.bindAs(x.c.MAC, a, l.Expiry, l.Hostname, !known, acked)
	// The stored lease replaced any the client had on another subnet
	// (one per MAC): a host moved to another bench loses the old one.
	for _, o := range x.s.subnets {
		if o != x.sub {
			o.pool.drop(x.c.MAC)
		}
	}
	x.send(dhcpv4.MessageTypeAck, a.AsSlice())
}

// admissible decides whether the client may have a, given its own
// reservation (invalid if none).
func (x *exchange) admissible(a, reserved netip.Addr, now time.Time) bool {
	switch {
	case !a.IsValid():
		return false
	case reserved.IsValid() && a == reserved:
		// Its own reservation, inside the range or not.
		return x.sub.pool.claim(x.c.MAC, a, now)
	case reserved.IsValid() && x.sub.pool.claim(x.c.MAC, reserved, now):
		// It asks for another address (a pool lease from before the
		// reservation) while its reservation is free: the NAK sends it
		// back to DISCOVER, which offers the reservation.
		return false
	}
	if f := x.reservedElsewhere(); f != nil && f(a) {
		// Reserved for another host since it was given out: NAK, and
		// free the slot for that host.
		x.sub.pool.release(x.c.MAC, a)
		x.debug("dhcp: REQUEST for an address reserved for another host, NAK")
		return false
	}
	return x.sub.pool.check(x.c.MAC, a, now)
}

// release frees the client's lease. RFC 2131 §4.4.4: the client unicasts
// a RELEASE straight to the server from the address it releases (ciaddr),
// so one that is relayed, broadcast from 0.0.0.0 or sent from another
// address is not the holder's and is refused: anyone on the network can
// name a host's MAC and address. (A forger that also fakes the source
// address is left; it needs a raw socket and the host's address.)
func (x *exchange) release() {
	if x.req.Options.Has(dhcpv4.OptionServerIdentifier) && !x.ours() {
		x.ignore("dhcp: RELEASE for another server")
		return
	}
	a := ciaddr(x.req)
	if !a.IsValid() || x.c.Relay != nil || srcAddr(x.src) != a {
		x.s.stats.releasesRefused.Add(1)
		x.debug("dhcp: RELEASE not unicast from the address it releases, refused")
		return
	}
	if !x.sub.pool.release(x.c.MAC, a) && !x.reservedOutside(a) {
		x.s.stats.releasesRefused.Add(1)
		x.debug("dhcp: RELEASE of an address the client does not hold, refused")
		return
	}
	x.s.stats.releases.Add(1)
	x.forgetLease(a, "dhcp: lease released")
}

// srcAddr is the IPv4 source of a packet, or invalid.
func srcAddr(src net.Addr) netip.Addr {
	if u, ok := src.(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(u.IP); ok && a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// decline quarantines the address the client says is in use (§4.3.3),
// if it is the one this client is in the middle of getting from us and
// the client's MAC has quarantined few enough (pool.decline).
func (x *exchange) decline() {
	if x.req.Options.Has(dhcpv4.OptionServerIdentifier) && !x.ours() {
		x.ignore("dhcp: DECLINE for another server")
		return
	}
	a := optAddr(x.req, dhcpv4.OptionRequestedIPAddress)
	now := x.s.now()
	switch x.sub.pool.decline(x.c.MAC, a, now) {
	case declineNotHeld:
		x.s.stats.declinesRefused.Add(1)
		x.debug("dhcp: DECLINE of an address not just offered or ACKed to the client, refused")
		return
	case declineCapped:
		x.s.stats.declinesCapped.Add(1)
		if x.s.declineWarn.Allow(now, warnEvery) {
			x.log.Warn().Stringer("mac", x.c.MAC).Stringer("ip", a).Int("max", maxDeclinesPerMAC).
				Uint64("refused", x.s.stats.declinesCapped.Load()).
				Msg("dhcp: DECLINE refused: the MAC already holds its quota of quarantined addresses (a forged MAC?)")
		}
		return
	}
	x.s.stats.declines.Add(1)
	// §4.3.3: another host uses the address; worth an operator's look.
	x.log.Warn().Stringer("mac", x.c.MAC).Stringer("ip", a).Dur("quarantine", declineHold).
		Msg("dhcp: client declined address (in use by another host?)")
	x.forgetLease(a, "dhcp: declined lease removed")
}

func (x *exchange) forgetLease(a netip.Addr, msg string) {
	if err := x.s.cfg.Leases.DeleteLease(x.c.MAC); err != nil {
		x.s.stats.storeErrors.Add(1)
		x.log.Error().Err(err).Stringer("mac", x.c.MAC).Stringer("ip", a).Msg("dhcp: deleting lease failed")
		return
	}
	x.log.Debug().Stringer("mac", x.c.MAC).Stringer("ip", a).Msg(msg)
}
