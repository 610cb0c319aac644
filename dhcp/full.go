package dhcp

import (
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// exhaustedWarnEvery rate-limits the pool-exhausted warning: a full pool
// sees every retransmission of every client.
const exhaustedWarnEvery = time.Minute

// full answers on port 67 as the network's only DHCP server.
func (x *exchange) full() {
	if r := x.c.Relay; r != nil {
		if a, _ := netip.AddrFromSlice(r); !x.s.subnet.Contains(a) {
			x.ignore("dhcp: relayed from a subnet this server does not serve")
			return
		}
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
		x.decline()
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

func (x *exchange) discover() {
	now := x.s.now()
	a, ok := x.s.pool.offer(x.c.MAC, optAddr(x.req, dhcpv4.OptionRequestedIPAddress), now)
	if !ok {
		x.s.stats.exhausted.Add(1)
		last := x.s.lastExhaustedWarn.Load()
		if now.UnixNano()-last >= int64(exhaustedWarnEvery) && x.s.lastExhaustedWarn.CompareAndSwap(last, now.UnixNano()) {
			x.log.Warn().Stringer("mac", x.c.MAC).Uint64("unanswered", x.s.stats.exhausted.Load()).
				Msg("dhcp: address pool exhausted, DISCOVERs go unanswered")
		}
		return
	}
	x.send(dhcpv4.MessageTypeOffer, a.AsSlice())
}

// request handles the three kinds of REQUEST of RFC 2131 §4.3.2.
func (x *exchange) request() {
	var a netip.Addr
	switch {
	case x.req.Options.Has(dhcpv4.OptionServerIdentifier):
		// SELECTING: the client answers one of the offers it got.
		if !x.ours() {
			x.s.pool.forget(x.c.MAC)
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
	if !a.IsValid() || !x.s.pool.check(x.c.MAC, a, now) {
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
	x.s.pool.bind(x.c.MAC, a, l.Expiry, l.Hostname)
	x.send(dhcpv4.MessageTypeAck, a.AsSlice())
}

func (x *exchange) release() {
	if x.req.Options.Has(dhcpv4.OptionServerIdentifier) && !x.ours() {
		x.ignore("dhcp: RELEASE for another server")
		return
	}
	a := ciaddr(x.req)
	if !x.s.pool.release(x.c.MAC, a) {
		x.ignore("dhcp: RELEASE of an address the client does not hold")
		return
	}
	x.s.stats.releases.Add(1)
	x.forgetLease(a, "dhcp: lease released")
}

func (x *exchange) decline() {
	if x.req.Options.Has(dhcpv4.OptionServerIdentifier) && !x.ours() {
		x.ignore("dhcp: DECLINE for another server")
		return
	}
	a := optAddr(x.req, dhcpv4.OptionRequestedIPAddress)
	if !x.s.pool.decline(x.c.MAC, a, x.s.now()) {
		x.ignore("dhcp: DECLINE of an address the client does not hold")
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
