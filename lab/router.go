package lab

import (
	"net/netip"
	"testing"
)

// Routed is a routed bench: the machines to be installed on a segment of
// their own, joined to the server's segment by a router, as a staging site
// puts a rack on a VLAN routed to the provisioning server. Nothing on the
// bench's segment reaches the server except through the router, so DHCP
// crosses only by a relay agent running in the router (RunDhcrelay,
// RunDnsmasqRelay).
//
//	Server (namespace, bridge)  ──veth──  Router (namespace, bridge = bench segment)  ──taps──  VMs
//	  stagehand at Server.ServerIP          Uplink at RouterUp, bridge at Router.ServerIP
type Routed struct {
	// Server is the server's segment: stagehand runs in Server.NS on its
	// bridge, at Server.ServerIP.
	Server *Net
	// Router is the router's namespace. Its bridge is the bench segment,
	// where StartVM(t, r.Router, ...) plugs VMs; Router.ServerIP is the
	// router's address there: the VMs' gateway and the relay's giaddr.
	Router *Net
	// Uplink is the router's interface on the server's segment, at
	// RouterUp.
	Uplink   string
	RouterUp netip.Addr
}

// NewRouted builds a routed bench named after name: the server's segment
// with the server at serverCIDR (e.g. "10.77.1.2/24"), the router on it at
// upCIDR ("10.77.1.1/24"), and the bench segment behind the router at
// benchCIDR ("10.77.2.1/24", the router's own address there). The router
// forwards between the two; the server's namespace routes the bench's
// subnet through it. No NAT: the server sees the bench machines' own
// addresses, as across a site's router. Cleanup deletes both namespaces.
func NewRouted(t testing.TB, name, serverCIDR, upCIDR, benchCIDR string) *Routed {
	t.Helper()
	up, err := netip.ParsePrefix(upCIDR)
	if err != nil || !up.Addr().Is4() {
		t.Fatalf("lab: bad router uplink cidr %q: %v", upCIDR, err)
	}
	r := &Routed{
		Server:   NewNet(t, name+"-srv", serverCIDR),
		Router:   NewNet(t, name+"-rtr", benchCIDR),
		Uplink:   "up0",
		RouterUp: up.Addr(),
	}
	if !r.Server.Prefix.Contains(r.RouterUp) {
		t.Fatalf("lab: router uplink %v is not on the server's segment %v", r.RouterUp, r.Server.Prefix)
	}
	r.Server.attach(t, r.Router.NS, r.Uplink, upCIDR)
	mustRun(t, "ip", "netns", "exec", r.Router.NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	r.routeBench(t, r.Server.NS)
	return r
}

// AddServerPeer adds another host on the server's segment (see AddPeer)
// that reaches the bench through the router: the site's DHCP server, say.
func (r *Routed) AddServerPeer(t testing.TB, name, cidr string) string {
	t.Helper()
	peer := r.Server.AddPeer(t, name, cidr)
	r.routeBench(t, peer)
	return peer
}

// routeBench routes the bench's subnet from namespace ns through the
// router's uplink.
func (r *Routed) routeBench(t testing.TB, ns string) {
	t.Helper()
	mustRun(t, "ip", "-n", ns, "route", "add", r.Router.Prefix.String(), "via", r.RouterUp.String())
}
