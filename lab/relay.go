package lab

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dhcrelay is an ISC dhcrelay process started by RunDhcrelay.
type Dhcrelay struct {
	*Process
}

// RunDhcrelay starts ISC dhcrelay (Debian's isc-dhcp-relay) in r's router,
// in the foreground (-d), relaying DHCPv4 from the bench segment (its
// downstream interface, -id) to each of servers through the uplink (-iu).
// Its giaddr is the router's address on the bench segment. It delivers a
// reply to the client's MAC whatever the reply's broadcast flag. It
// returns once dhcrelay has opened its sockets; cleanup stops it by PID.
func RunDhcrelay(t testing.TB, r *Routed, servers ...netip.Addr) *Dhcrelay {
	t.Helper()
	if _, err := exec.LookPath("dhcrelay"); err != nil {
		t.Fatalf("lab: dhcrelay not found (apt-get install isc-dhcp-relay): %v", err)
	}
	if len(servers) == 0 {
		t.Fatalf("lab: RunDhcrelay: no server to relay to")
	}
	args := []string{"-d", "-4",
		"-pf", filepath.Join(t.TempDir(), "dhcrelay.pid"),
		"-id", r.Router.Bridge, "-iu", r.Uplink}
	for _, s := range servers {
		args = append(args, s.String())
	}
	d := &Dhcrelay{Start(t, r.Router.NS, "dhcrelay", args...)}
	d.WaitReady(t, "sending", 10*time.Second, func() bool { return strings.Contains(d.Output(), "Sending on   Socket/fallback") })
	return d
}

// RunDnsmasqRelay starts dnsmasq in r's router as a DHCP relay only
// (--dhcp-relay=BENCH-ADDRESS,SERVER, once per server): requests arriving
// on the bench segment go to each server with giaddr the router's address
// there, and replies from a server go back to the client, by broadcast
// only when the reply's broadcast flag asks for it. It returns once
// dnsmasq has announced its relays; cleanup stops it by PID.
func RunDnsmasqRelay(t testing.TB, r *Routed, servers ...netip.Addr) *Dnsmasq {
	t.Helper()
	if len(servers) == 0 {
		t.Fatalf("lab: RunDnsmasqRelay: no server to relay to")
	}
	local := r.Router.ServerIP.String()
	args := []string{"--interface=" + r.Router.Bridge, "--log-dhcp"}
	for _, s := range servers {
		args = append(args, "--dhcp-relay="+local+","+s.String())
	}
	// dnsmasq announces the relays last to first: servers[0]'s line comes
	// last.
	return startDnsmasq(t, r.Router.NS, "DHCP relay from "+local+" to "+servers[0].String(), args)
}

// RunDnsmasqSiteRemote is RunDnsmasqSite for a subnet the server is not
// on: the site's DHCP server answering, through a relay, the bench behind
// a router. dnsmasq selects the range by the relay's giaddr, which must lie
// in rangeStart–rangeEnd's subnet (netmask, e.g. "255.255.255.0"); router
// is handed out as the bench's gateway (option 3).
func RunDnsmasqSiteRemote(t testing.TB, ns, iface, rangeStart, rangeEnd, netmask, router string, extra ...string) *Dnsmasq {
	t.Helper()
	return startDnsmasq(t, ns, "DHCP, IP range", append(siteArgs(iface, rangeStart+","+rangeEnd+","+netmask),
		append([]string{"--dhcp-option=3," + router}, extra...)...))
}
