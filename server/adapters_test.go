package server

import (
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/ipxe"
)

func TestDHCPEventDetail(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.7")
	for _, tc := range []struct {
		r    dhcp.Reply
		want string
	}{
		{dhcp.Reply{Type: dhcpv4.MessageTypeOffer, IP: ip, BootFile: "http://s/boot.ipxe", Client: dhcp.Client{Arch: ipxe.ArchBIOS}},
			"full OFFER 10.0.0.7 client firmware-pxe arch bios boot http://s/boot.ipxe"},
		{dhcp.Reply{Type: dhcpv4.MessageTypeAck, IP: ip, BootFile: "http://s/boot.ipxe", Client: dhcp.Client{Arch: ipxe.ArchEFI64, IPXE: true}},
			"full ACK 10.0.0.7 client ipxe arch efi-x64 boot http://s/boot.ipxe"},
		{dhcp.Reply{Type: dhcpv4.MessageTypeAck, Port: dhcp.DiscoveryPort, BootFile: "snponly.efi", Client: dhcp.Client{Arch: ipxe.ArchEFI64, PXE: true}},
			"full ACK port 4011 client firmware-pxe arch efi-x64 boot snponly.efi"},
		{dhcp.Reply{Type: dhcpv4.MessageTypeOffer, Port: dhcp.ServerPort, BootFile: "http://s/tftp/snponly.efi", Client: dhcp.Client{Arch: ipxe.ArchEFI64HTTP, HTTPBoot: true}},
			"full OFFER client firmware-http arch efi-x64-http boot http://s/tftp/snponly.efi"},
		{dhcp.Reply{Type: dhcpv4.MessageTypeAck, IP: ip, Client: dhcp.Client{Arch: ipxe.ArchUnknown}},
			"full ACK 10.0.0.7, no boot file (not a PXE client)"},
	} {
		if got := dhcpEventDetail("full", tc.r); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
