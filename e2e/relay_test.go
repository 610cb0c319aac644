//go:build e2e

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// The routed bench every test here boots on: stagehand at 10.77.1.2 on the
// server's segment, the site's DHCP server (dnsmasq, when the test has
// one) at 10.77.1.3 handing the bench 10.77.2.50-99 through the relay, and
// the VMs on 10.77.2.0/24 behind a router (10.77.1.1 / 10.77.2.1) that runs
// a real relay agent. Nothing else joins the two segments: no DHCP, TFTP
// or IPv6 router solicitation of the VMs reaches stagehand's link.
var (
	stagehandIP = netip.MustParseAddr("10.77.1.2")
	siteIP      = netip.MustParseAddr("10.77.1.3")
)

// relayAgent is a relay the router runs: start runs it towards servers and
// returns its log; forwarded is the log line it writes for a request from
// mac forwarded to server.
type relayAgent struct {
	start     func(t *testing.T, r *lab.Routed, servers ...netip.Addr) func() string
	forwarded func(mac string, server netip.Addr) string
}

var (
	dhcrelay = relayAgent{
		start: func(t *testing.T, r *lab.Routed, servers ...netip.Addr) func() string {
			return lab.RunDhcrelay(t, r, servers...).Output
		},
		forwarded: func(mac string, server netip.Addr) string {
			return "Forwarded BOOTREQUEST for " + mac + " to " + server.String()
		},
	}
	dnsmasqRelay = relayAgent{
		start: func(t *testing.T, r *lab.Routed, servers ...netip.Addr) func() string {
			return lab.RunDnsmasqRelay(t, r, servers...).Log
		},
		// dnsmasq names the relay and the server, not the client.
		forwarded: func(_ string, server netip.Addr) string {
			return "DHCP relay at 10.77.2.1 -> " + server.String()
		},
	}
)

// relayed is stagehand serving a routed bench through a relay.
type relayed struct {
	*server
	agent    relayAgent
	relayLog func() string
}

// routedBench builds the bench named name, with the site's DHCP server if
// site is set, the relay agent forwarding to the site server (if any) and
// stagehand, and stagehand started with args and the lab profile "lab".
func routedBench(t *testing.T, name string, agent relayAgent, site bool, args ...string) *relayed {
	t.Helper()
	r := lab.NewRouted(t, name, stagehandIP.String()+"/24", "10.77.1.1/24", "10.77.2.1/24")
	to := []netip.Addr{stagehandIP}
	if site {
		ns := r.AddServerPeer(t, "site", siteIP.String()+"/24")
		lab.RunDnsmasqSiteRemote(t, ns, "eth0", "10.77.2.50", "10.77.2.99", "255.255.255.0", "10.77.2.1")
		to = append([]netip.Addr{siteIP}, to...)
	}
	s := startServer(t, r.Server, args...)
	s.bench = r.Router
	s.addLabProfile("lab", "")
	return &relayed{server: s, agent: agent, relayLog: agent.start(t, r, to...)}
}

// Phases of an install on the bench: iPXE from the NIC ROM, and firmware
// PXE chaining snponly.efi over TFTP.
var (
	romPhases = []string{"ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done"}
	pxePhases = append([]string{"firmware-dhcp", "boot-file"}, romPhases...)
)

// install boots a VM with opts on the bench to installed and then to
// local disk (installThenLocal), and checks what only a relay could have
// done: the relay's log shows it forwarded the VM's requests to
// stagehand, and the host's address is from first-last, the bench's
// subnet. The install's timeline must have phases (checkPhases); the
// time from power-on to installed and stage 1's (iPXE's DHCP ACK → stage
// 1 request) are logged as figures. On a routed bench stage 1 holds
// iPXE's wait for an IPv6 router advertisement: its router solicitations
// stay on the bench's segment, where stagehand is not, so only the site's
// router can end the wait (docs/RELIABILITY.md).
func (b *relayed) install(t *testing.T, opts lab.VMOptions, name, first, last string, phases []string) {
	t.Helper()
	poweron := time.Now()
	installThenLocal(t, b.server, opts, name)
	if want := b.agent.forwarded(opts.MAC, stagehandIP); !strings.Contains(b.relayLog(), want) {
		t.Errorf("the relay's log has no %q:\n%s", want, lab.Tail(b.relayLog(), 30))
	}
	ip, err := netip.ParseAddr(b.host(opts.MAC).LastIP)
	if err != nil || ip.Less(netip.MustParseAddr(first)) || netip.MustParseAddr(last).Less(ip) {
		t.Errorf("host's last IP %v is not from %s-%s", ip, first, last)
	}
	a := b.checkPhases(opts.MAC, phases...)
	s1, _ := a.Phase(inventory.PhaseStage1)
	t.Logf("FIGURE %s: power-on → installed %.1f s; iPXE's DHCP ACK → stage 1 %.1f s",
		t.Name(), a.End.Sub(poweron).Seconds(), s1.Seconds)
}

// proxyDHCP behind dnsmasq's relay, which forwards the VM's requests to
// the site's DHCP server and to stagehand and delivers a reply to the
// client by broadcast only when the reply's broadcast flag asks for it:
// iPXE (NIC ROM) takes its address from the site server and its boot
// script from stagehand's proxy offer, and installs.
func TestRelayProxyDnsmasq(t *testing.T) {
	b := routedBench(t, "rdm", dnsmasqRelay, true, "--dhcp-mode", "proxy", "--dhcp-trusted-relays", "10.77.2.1")
	mac := "52:54:00:e2:72:01"
	b.cli("host", "add", mac, "--profile", "lab", "--name", "bench2-node1")
	b.install(t, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, NICROM: true}, "bench2-node1", "10.77.2.50", "10.77.2.99", romPhases)
}

// proxyDHCP behind ISC dhcrelay, which forwards to both servers and
// writes every reply to the client's MAC.
func TestRelayProxyDhcrelay(t *testing.T) {
	b := routedBench(t, "rdr", dhcrelay, true, "--dhcp-mode", "proxy", "--dhcp-trusted-relays", "10.77.2.1")
	mac := "52:54:00:e2:72:02"
	b.cli("host", "add", mac, "--profile", "lab", "--name", "bench2-node2")
	b.install(t, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, NICROM: true}, "bench2-node2", "10.77.2.50", "10.77.2.99", romPhases)
}

// Firmware PXE behind a relay: OVMF with the NIC ROM disabled takes the
// proxy offer through dhcrelay, asks stagehand's port 4011 across the
// router, fetches snponly.efi over TFTP across the router, and that iPXE
// asks again through the relay for its script.
func TestRelayUEFIProxyTFTP(t *testing.T) {
	b := routedBench(t, "rdu", dhcrelay, true, "--dhcp-mode", "proxy", "--dhcp-trusted-relays", "10.77.2.1")
	mac := "52:54:00:e2:72:03"
	b.cli("host", "add", mac, "--profile", "lab", "--name", "bench2-node3")
	b.install(t, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, NICROM: false}, "bench2-node3", "10.77.2.50", "10.77.2.99", pxePhases)
	if ev := b.events(mac); !tftpBeforeBooting(ev, "snponly.efi") {
		t.Errorf("the first boot's TFTP transfer of snponly.efi is not recorded on the host; events: %+v", ev)
	}
}

// Full DHCP for the bench's subnet through dhcrelay, with no other DHCP
// server: stagehand leases from the range whose subnet holds the relay's
// giaddr, the VM installs, and its second boot goes to local disk.
func TestRelayFullDHCP(t *testing.T) {
	b := routedBench(t, "rdf", dhcrelay, false, "--dhcp-mode", "full", "--dhcp-range", "10.77.2.100-10.77.2.199/24,router=10.77.2.1")
	mac := "52:54:00:e2:72:04"
	b.cli("host", "add", mac, "--profile", "lab", "--name", "bench2-node4")
	b.install(t, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, NICROM: true}, "bench2-node4", "10.77.2.100", "10.77.2.199", romPhases)
}
