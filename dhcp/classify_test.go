package dhcp

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/ipxe"
)

func TestClassify(t *testing.T) {
	guid := []byte{0, 0x8d, 0x2c, 0x57, 0x1e, 0x4b, 0x2a, 0x45, 0x1b, 0x9e, 0x6c, 0x3f, 0x21, 0xa0, 0x11, 0x5e, 0x42}
	zeroGUID := make([]byte, 17)
	tests := []struct {
		file                  string
		mac                   string
		arch                  ipxe.Arch
		pxe, http, ipxeClient bool
		bootable              bool
		guid, undi            []byte
		relay                 net.IP
		hostname              string
		msgType               dhcpv4.MessageType
	}{
		{file: "bios-pxe-discover", mac: "52:54:00:aa:00:01", arch: ipxe.ArchBIOS, pxe: true, bootable: true,
			guid: guid, undi: []byte{1, 2, 1}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "qemu-bios-ipxe-discover", mac: "52:54:00:12:34:56", arch: ipxe.ArchBIOS, pxe: true, ipxeClient: true, bootable: true,
			guid: zeroGUID, undi: []byte{1, 2, 1}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "qemu-ovmf-pxe-discover", mac: "52:54:00:12:34:57", arch: ipxe.ArchEFI64, pxe: true, bootable: true,
			guid: zeroGUID, undi: []byte{1, 3, 0}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "qemu-efi-ipxe-discover", mac: "52:54:00:12:34:58", arch: ipxe.ArchEFI64, pxe: true, ipxeClient: true, bootable: true,
			guid: zeroGUID, undi: []byte{1, 3, 10}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "http-boot-discover", mac: "52:54:00:aa:00:04", arch: ipxe.ArchEFI64HTTP, http: true, bootable: true,
			guid: guid, undi: []byte{1, 3, 1}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "bios-pxe-relayed", mac: "52:54:00:aa:00:02", arch: ipxe.ArchBIOS, pxe: true, bootable: true,
			guid: guid, undi: []byte{1, 2, 1}, relay: net.IPv4(10, 1, 2, 1).To4(), msgType: dhcpv4.MessageTypeDiscover},
		{file: "bios-pxe-request-4011", mac: "52:54:00:aa:00:03", arch: ipxe.ArchBIOS, pxe: true, bootable: true,
			guid: guid, undi: []byte{1, 2, 1}, msgType: dhcpv4.MessageTypeRequest},
		{file: "nonpxe-discover", mac: "52:54:00:aa:00:05", arch: ipxe.ArchUnknown, hostname: "rack1-node5",
			msgType: dhcpv4.MessageTypeDiscover},
		{file: "arch22-discover", mac: "52:54:00:aa:00:06", arch: ipxe.Arch(0x22), pxe: true,
			undi: []byte{1, 3, 1}, msgType: dhcpv4.MessageTypeDiscover},
		{file: "vci-only-discover", mac: "52:54:00:aa:00:07", arch: ipxe.ArchEFI64, pxe: true, bootable: true,
			undi: []byte{1, 3, 0}, msgType: dhcpv4.MessageTypeDiscover},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Classify(loadPacket(t, tt.file))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if c.MAC.String() != tt.mac {
				t.Errorf("MAC = %v, want %v", c.MAC, tt.mac)
			}
			if c.Arch != tt.arch {
				t.Errorf("Arch = %v, want %v", c.Arch, tt.arch)
			}
			if c.PXE != tt.pxe || c.HTTPBoot != tt.http || c.IPXE != tt.ipxeClient {
				t.Errorf("PXE/HTTPBoot/IPXE = %v/%v/%v, want %v/%v/%v", c.PXE, c.HTTPBoot, c.IPXE, tt.pxe, tt.http, tt.ipxeClient)
			}
			if c.Bootable() != tt.bootable {
				t.Errorf("Bootable = %v, want %v", c.Bootable(), tt.bootable)
			}
			if !bytes.Equal(c.GUID, tt.guid) {
				t.Errorf("GUID = %x, want %x", c.GUID, tt.guid)
			}
			if !bytes.Equal(c.UNDI, tt.undi) {
				t.Errorf("UNDI = %x, want %x", c.UNDI, tt.undi)
			}
			if !c.Relay.Equal(tt.relay) || (c.Relay == nil) != (tt.relay == nil) {
				t.Errorf("Relay = %v, want %v", c.Relay, tt.relay)
			}
			if c.Hostname != tt.hostname {
				t.Errorf("Hostname = %q, want %q", c.Hostname, tt.hostname)
			}
			if c.MsgType != tt.msgType {
				t.Errorf("MsgType = %v, want %v", c.MsgType, tt.msgType)
			}
		})
	}
}

// Packets the parser or Classify must refuse without panicking.
func TestClassifyRejects(t *testing.T) {
	for _, name := range []string{"malformed-truncated", "malformed-cookie", "malformed-optlen"} {
		t.Run(name, func(t *testing.T) {
			if p, err := dhcpv4.FromBytes(loadHex(t, name)); err == nil {
				t.Fatalf("FromBytes accepted it: %v", p.Summary())
			}
		})
	}
	t.Run("bootp-request", func(t *testing.T) {
		if _, err := Classify(loadPacket(t, "bootp-request")); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
	t.Run("reply", func(t *testing.T) {
		p := loadPacket(t, "bios-pxe-discover")
		p.OpCode = dhcpv4.OpcodeBootReply
		if _, err := Classify(p); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
	t.Run("infiniband", func(t *testing.T) {
		p := loadPacket(t, "bios-pxe-discover")
		p.ClientHWAddr = make(net.HardwareAddr, 0)
		if _, err := Classify(p); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
}

func TestArchFromVCI(t *testing.T) {
	tests := []struct {
		vci  string
		arch ipxe.Arch
		ok   bool
	}{
		{"PXEClient:Arch:00000:UNDI:002001", ipxe.ArchBIOS, true},
		{"PXEClient:Arch:00007:UNDI:003000", ipxe.ArchEFI64, true},
		{"HTTPClient:Arch:00016:UNDI:003001", ipxe.ArchEFI64HTTP, true},
		{"PXEClient:Arch:00009", ipxe.ArchEFIBC, true},
		{"PXEClient:Arch:0001", 0, false},
		{"PXEClient:Arch:0x007", 0, false},
		{"PXEClient:Arch:99999", 0, false},
		{"PXEClient", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		a, ok := archFromVCI([]byte(tt.vci))
		if a != tt.arch || ok != tt.ok {
			t.Errorf("archFromVCI(%q) = %v, %v; want %v, %v", tt.vci, a, ok, tt.arch, tt.ok)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, name := range []string{"bios-pxe-discover", "qemu-bios-ipxe-discover", "qemu-ovmf-pxe-discover",
		"http-boot-discover", "bios-pxe-relayed", "nonpxe-discover", "malformed-optlen"} {
		f.Add(loadHex(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		c, err := Classify(p)
		if err != nil {
			return
		}
		r := newReplier(&Config{ServerIP: net.IPv4(10, 0, 0, 1), HTTPPort: 80, BIOSFile: "a", EFIFile: "b"})
		resp, _ := r.build(p, &c, dhcpv4.MessageTypeOffer, nil, nil)
		if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
	})
}
