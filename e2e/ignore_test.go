//go:build e2e

package e2e

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/lab"
)

// pxeDiscover builds the DISCOVER a BIOS PXE ROM sends.
func pxeDiscover(t *testing.T, mac string) []byte {
	hw, _ := net.ParseMAC(mac)
	d, err := dhcpv4.NewDiscovery(hw,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...)),
	)
	if err != nil {
		t.Fatal(err)
	}
	return d.ToBytes()
}

// offers sends a PXE DISCOVER for mac as a broadcast from a host on the
// lab bridge and returns the replies that arrive within wait.
func offers(t *testing.T, pc net.PacketConn, mac string, wait time.Duration) []*dhcpv4.DHCPv4 {
	t.Helper()
	if _, err := pc.WriteTo(pxeDiscover(t, mac), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		t.Fatal(err)
	}
	hw, _ := net.ParseMAC(mac)
	var got []*dhcpv4.DHCPv4
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for {
		pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return got
		}
		if m, err := dhcpv4.FromBytes(buf[:n]); err == nil && m.OpCode == dhcpv4.OpcodeBootReply && m.ClientHWAddr.String() == hw.String() {
			got = append(got, m)
		}
	}
}

// With --unknown-hosts ignore (the default), a MAC the inventory does not
// know gets no DHCP answer at all, while a known one does.
func TestUnknownMACIgnored(t *testing.T) {
	n := lab.NewNet(t, "ignore", "10.99.4.1/24")
	client := n.AddPeer(t, "client", "")
	s := startServer(t, n, "--dhcp-mode", "proxy")
	s.addLabProfile("lab", "")
	known, unknown := "52:54:00:e2:04:01", "52:54:00:e2:04:99"
	s.cli("host", "add", known, "--profile", "lab")

	pc, err := lab.ListenPacketIn(client, "udp4", "0.0.0.0:68")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raw, _ := pc.(*net.UDPConn).SyscallConn()
	// As a DHCP client does: broadcast, out of the one interface.
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		syscall.BindToDevice(int(fd), "eth0")
	})

	got := offers(t, pc, known, 3*time.Second)
	if len(got) == 0 {
		t.Fatalf("known MAC %s got no proxy offer (positive control)", known)
	}
	if got[0].MessageType() != dhcpv4.MessageTypeOffer || got[0].BootFileName == "" {
		t.Fatalf("known MAC: reply %s with boot file %q, want an OFFER with a boot file", got[0].MessageType(), got[0].BootFileName)
	}
	if got := offers(t, pc, unknown, 3*time.Second); len(got) != 0 {
		t.Fatalf("unknown MAC %s got %d replies under --unknown-hosts ignore, want none: %s", unknown, len(got), got[0].Summary())
	}
	if _, err := s.cliErr("host", "show", unknown); err == nil {
		t.Fatalf("unknown MAC %s was recorded in the inventory", unknown)
	}
}
