package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Range is one full-mode address pool and the subnet it lies in. A range
// whose subnet holds ServerIP serves the local segment; any other serves
// the clients of a relay agent on that subnet (RFC 2131 §4.3.1: the
// relay's giaddr, or RFC 3527's link selection, names the subnet).
type Range struct {
	Start, End netip.Addr // inclusive, IPv4
	// Subnet is the client's subnet: option 1 is its mask. Its prefix
	// length is 8..30.
	Subnet netip.Prefix
	Router netip.Addr   // option 3; invalid: none
	DNS    []netip.Addr // option 6; none if empty
}

func (r Range) String() string {
	return fmt.Sprintf("%v-%v/%d", r.Start, r.End, r.Subnet.Bits())
}

// RangeError is a Range that Config.Ranges cannot hold, with the index of
// the range, so that a caller can name the flag or key it came from.
type RangeError struct {
	Index int
	Err   error
}

func (e *RangeError) Error() string { return fmt.Sprintf("dhcp: range %d: %v", e.Index+1, e.Err) }
func (e *RangeError) Unwrap() error { return e.Err }

// CheckRanges reports the first range of rs that a full-mode server at
// serverIP could not serve, as a *RangeError, or an error for rs as a
// whole. NewServer runs it too; callers run it to refuse a configuration
// before they bind anything.
func CheckRanges(rs []Range, serverIP netip.Addr) error {
	if len(rs) == 0 {
		return errors.New("dhcp: full mode needs at least one range")
	}
	total := 0
	for i, r := range rs {
		if err := r.check(serverIP); err != nil {
			return &RangeError{i, err}
		}
		total += int(u32(r.End)-u32(r.Start)) + 1
		for _, o := range rs[:i] {
			if err := r.conflict(o); err != nil {
				return &RangeError{i, err}
			}
		}
	}
	if total > maxPoolSize {
		return fmt.Errorf("dhcp: the ranges hold %d addresses, more than %d", total, maxPoolSize)
	}
	return nil
}

// check is CheckRanges for one range alone.
func (r Range) check(serverIP netip.Addr) error {
	p := r.Subnet
	switch {
	case !r.Start.Is4() || !r.End.Is4():
		return errors.New("start and end must be IPv4 addresses")
	case !p.IsValid() || !p.Addr().Is4() || p != p.Masked():
		return fmt.Errorf("subnet %v is not an IPv4 network prefix", p)
	case p.Bits() < 8 || p.Bits() > 30:
		return fmt.Errorf("prefix /%d outside /8../30", p.Bits())
	case r.End.Less(r.Start):
		return fmt.Errorf("end %v before start %v", r.End, r.Start)
	case !p.Contains(r.Start) || !p.Contains(r.End):
		return fmt.Errorf("%v-%v is not inside its subnet %v", r.Start, r.End, p)
	case r.holds(p.Addr()) || r.holds(broadcast(p)):
		return fmt.Errorf("holds the network or broadcast address of %v", p)
	case r.holds(serverIP):
		return fmt.Errorf("holds the server's own address %v", serverIP)
	case r.Router.IsValid() && (!r.Router.Is4() || !p.Contains(r.Router)):
		return fmt.Errorf("router %v outside the subnet %v", r.Router, p)
	case r.Router.IsValid() && r.holds(r.Router):
		return fmt.Errorf("router %v inside the range", r.Router)
	}
	for _, d := range r.DNS {
		if !d.Is4() {
			return fmt.Errorf("DNS server %v is not IPv4", d)
		}
	}
	return nil
}

// conflict reports why r and o cannot both be served: their addresses
// overlap, or their subnets overlap without being one subnet with one
// router and one DNS list (a request selects a subnet, whose options
// must be one answer).
func (r Range) conflict(o Range) error {
	switch {
	case !(r.End.Less(o.Start) || o.End.Less(r.Start)):
		return fmt.Errorf("overlaps the range %v", o)
	case !r.Subnet.Overlaps(o.Subnet):
		return nil
	case r.Subnet != o.Subnet:
		return fmt.Errorf("subnet %v overlaps the subnet %v of the range %v", r.Subnet, o.Subnet, o)
	case r.Router != o.Router || !slices.Equal(r.DNS, o.DNS):
		return fmt.Errorf("same subnet %v as the range %v, but another router or DNS", r.Subnet, o)
	}
	return nil
}

func (r Range) holds(a netip.Addr) bool {
	return a.Is4() && !a.Less(r.Start) && !r.End.Less(a)
}

func broadcast(p netip.Prefix) netip.Addr {
	return addrFromU32(u32(p.Addr()) | (1<<(32-p.Bits()) - 1))
}

// subnet is one served subnet: its ranges in one pool, and the options
// of its replies.
type subnet struct {
	prefix netip.Prefix
	// local: it holds ServerIP, so it serves requests that were not
	// relayed; a relay agent inside any other one is trusted.
	local  bool
	router netip.Addr
	pool   *pool
	opts   leaseOpts
}

// leaseOpts are a subnet's options 1, 3 and 6, built once.
type leaseOpts struct {
	netmask, router, dns []byte
}

// newSubnets groups checked ranges by subnet, in the order of their
// first range.
func newSubnets(rs []Range, serverIP netip.Addr) []*subnet {
	var out []*subnet
	byPrefix := map[netip.Prefix][]Range{}
	for _, r := range rs {
		if byPrefix[r.Subnet] == nil {
			out = append(out, &subnet{prefix: r.Subnet, local: r.Subnet.Contains(serverIP), router: r.Router})
		}
		byPrefix[r.Subnet] = append(byPrefix[r.Subnet], r)
	}
	for _, s := range out {
		rs := byPrefix[s.prefix]
		s.pool = newPool(rs)
		s.opts.netmask = net.CIDRMask(s.prefix.Bits(), 32)
		if rs[0].Router.IsValid() {
			s.opts.router = rs[0].Router.AsSlice()
		}
		for _, d := range rs[0].DNS {
			s.opts.dns = append(s.opts.dns, d.AsSlice()...)
		}
	}
	return out
}

// subnetOf returns the served subnet holding a, or nil.
func (s *Server) subnetOf(a netip.Addr) *subnet {
	for _, sn := range s.subnets {
		if sn.prefix.Contains(a) {
			return sn
		}
	}
	return nil
}

// localSubnet returns the subnet holding ServerIP, or nil.
func (s *Server) localSubnet() *subnet {
	for _, sn := range s.subnets {
		if sn.local {
			return sn
		}
	}
	return nil
}

// linkSelection returns the address of RFC 3527's link selection
// sub-option (option 82, sub-option 5), or invalid.
func linkSelection(req *dhcpv4.DHCPv4) netip.Addr {
	ri := req.RelayAgentInfo()
	if ri == nil {
		return netip.Addr{}
	}
	if v := ri.Get(dhcpv4.LinkSelectionSubOption); len(v) == 4 {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

// selectSubnet finds the subnet the client is on (RFC 2131 §4.3.1) and
// sets x.sub, or counts and drops the request:
//   - relayed (giaddr set): the subnet of RFC 3527's link selection
//     sub-option if the relay sent one (§4: it names the client's
//     subnet when giaddr cannot), else the subnet holding giaddr;
//   - a RENEWING or REBINDING REQUEST (§4.3.2) and a RELEASE (§4.4.4)
//     come straight from the client's address, also on a relayed
//     subnet: the subnet holding ciaddr, when one does;
//   - anything else: the local subnet.
func (x *exchange) selectSubnet() bool {
	if r := x.c.Relay; r != nil {
		gi, _ := netip.AddrFromSlice(r)
		by := gi
		if ls := linkSelection(x.req); ls.IsValid() {
			by = ls
		}
		if x.sub = x.s.subnetOf(by); x.sub != nil {
			return true
		}
		x.s.stats.relayRefused.Add(1)
		x.warnRelay(gi, by, "dhcp: relayed for a subnet no range serves, dropped (add a --dhcp-range for it)")
		return false
	}
	if renewing(x.req) || x.c.MsgType == dhcpv4.MessageTypeRelease {
		if x.sub = x.s.subnetOf(ciaddr(x.req)); x.sub != nil {
			return true
		}
	}
	if x.sub = x.s.localSubnet(); x.sub != nil {
		return true
	}
	x.ignore("dhcp: no range serves the local segment")
	return false
}

// trustedRelay reports whether giaddr a may receive replies: listed in
// Config.TrustedRelays, or, in full mode, inside a relayed range's
// subnet: the operator declared that subnet by configuring its range,
// and its relay is where its clients' replies must go. A giaddr on the
// local subnet is not trusted by that rule: the local segment is served
// directly, and a sender there could name any neighbour as giaddr.
func (s *Server) trustedRelay(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedRelays {
		if p.Contains(a) {
			return true
		}
	}
	sn := s.subnetOf(a)
	return sn != nil && !sn.local
}
