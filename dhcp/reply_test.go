package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/ipxe"
)

func testConfig(mode Mode) Config {
	c := Config{
		Mode:     mode,
		ServerIP: net.IPv4(192, 168, 77, 1),
		HTTPPort: 8080,
		Ranges: []Range{{
			Start: netip.MustParseAddr("192.168.77.100"), End: netip.MustParseAddr("192.168.77.199"),
			Subnet: netip.MustParsePrefix("192.168.77.0/24"), Router: netip.MustParseAddr("192.168.77.254"),
			DNS: []netip.Addr{netip.MustParseAddr("192.168.77.53"), netip.MustParseAddr("9.9.9.9")},
		}},
		LeaseTime: 2 * time.Hour,
		Leases:    &MemLeases{},
	}
	c.setDefaults()
	return c
}

func TestBuildReply(t *testing.T) {
	serverID := []byte{192, 168, 77, 1}
	leased := net.IPv4(192, 168, 77, 123).To4()
	tests := []struct {
		name   string
		mode   Mode
		packet string
		edit   func(*Client)
		typ    dhcpv4.MessageType
		yiaddr net.IP

		file      string // "" = no boot options expected
		tftp      bool   // option 66 expected
		vci       string // option 60
		vendor43  bool
		guidEcho  bool
		ciaddr    net.IP
		relayOpts bool // option 82 echoed
		bcast     bool // broadcast flag set (the requests all have it clear)
	}{
		{name: "proxy offer, BIOS PXE ROM", mode: ModeProxy, packet: "bios-pxe-discover", typ: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true, bcast: true},
		{name: "proxy offer, OVMF PXE", mode: ModeProxy, packet: "qemu-ovmf-pxe-discover", typ: dhcpv4.MessageTypeOffer,
			file: "snponly.efi", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true, bcast: true},
		{name: "proxy offer, iPXE BIOS gets the script", mode: ModeProxy, packet: "qemu-bios-ipxe-discover", typ: dhcpv4.MessageTypeOffer,
			file: "http://192.168.77.1:8080/boot.ipxe", vci: "PXEClient", guidEcho: true, bcast: true},
		{name: "proxy offer, iPXE EFI gets the script", mode: ModeProxy, packet: "qemu-efi-ipxe-discover", typ: dhcpv4.MessageTypeOffer,
			file: "http://192.168.77.1:8080/boot.ipxe", vci: "PXEClient", guidEcho: true, bcast: true},
		{name: "proxy offer, UEFI HTTP boot", mode: ModeProxy, packet: "http-boot-discover", typ: dhcpv4.MessageTypeOffer,
			file: "http://192.168.77.1:8080/tftp/snponly.efi", vci: "HTTPClient", guidEcho: true, bcast: true},
		{name: "proxy offer, EFI arch from option 60 only", mode: ModeProxy, packet: "vci-only-discover", typ: dhcpv4.MessageTypeOffer,
			file: "snponly.efi", tftp: true, vci: "PXEClient", vendor43: true, bcast: true},
		{name: "proxy offer, relayed", mode: ModeProxy, packet: "bios-pxe-relayed", typ: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true, relayOpts: true, bcast: true},
		{name: "4011 ack echoes ciaddr", mode: ModeProxy, packet: "bios-pxe-request-4011", typ: dhcpv4.MessageTypeAck,
			file: "undionly.kpxe", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true, ciaddr: net.IPv4(192, 168, 77, 50).To4()},
		{name: "full offer, BIOS PXE ROM", mode: ModeFull, packet: "bios-pxe-discover", typ: dhcpv4.MessageTypeOffer, yiaddr: leased,
			file: "undionly.kpxe", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true},
		{name: "full ack, OVMF", mode: ModeFull, packet: "qemu-ovmf-pxe-discover", typ: dhcpv4.MessageTypeAck, yiaddr: leased,
			file: "snponly.efi", tftp: true, vci: "PXEClient", vendor43: true, guidEcho: true},
		{name: "full offer, non-PXE client gets an address only", mode: ModeFull, packet: "nonpxe-discover", typ: dhcpv4.MessageTypeOffer, yiaddr: leased},
		{name: "full offer, unknown arch gets an address only", mode: ModeFull, packet: "arch22-discover", typ: dhcpv4.MessageTypeOffer, yiaddr: leased},
		{name: "full offer, ARM64 without ARM64File", mode: ModeFull, packet: "qemu-ovmf-pxe-discover", typ: dhcpv4.MessageTypeOffer, yiaddr: leased,
			edit: func(c *Client) { c.Arch = ipxe.ArchARM64 }},
		{name: "full nak", mode: ModeFull, packet: "bios-pxe-discover", typ: dhcpv4.MessageTypeNak, bcast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.mode)
			req := loadPacket(t, tt.packet)
			c, err := Classify(req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				tt.edit(&c)
			}
			var opts *leaseOpts
			if cfg.Mode == ModeFull {
				opts = &newSubnets(cfg.Ranges, netip.MustParseAddr("192.168.77.1"))[0].opts
			}
			resp, file := newReplier(&cfg).build(req, &c, tt.typ, tt.yiaddr, opts)
			// Round-trip through the wire format, as the client sees it.
			got, err := dhcpv4.FromBytes(resp.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if got.OpCode != dhcpv4.OpcodeBootReply || got.TransactionID != req.TransactionID ||
				!bytes.Equal(got.ClientHWAddr, req.ClientHWAddr) || got.Flags&0x7fff != req.Flags&0x7fff {
				t.Errorf("header not copied from request: %v", got.Summary())
			}
			if want := tt.bcast || req.IsBroadcast(); got.IsBroadcast() != want {
				t.Errorf("broadcast flag = %v, want %v (request's: %v)", got.IsBroadcast(), want, req.IsBroadcast())
			}
			if got.MessageType() != tt.typ {
				t.Errorf("type = %v, want %v", got.MessageType(), tt.typ)
			}
			if sid := got.Options.Get(dhcpv4.OptionServerIdentifier); !bytes.Equal(sid, serverID) {
				t.Errorf("option 54 = %v, want %v", sid, serverID)
			}
			if !got.GatewayIPAddr.Equal(req.GatewayIPAddr) {
				t.Errorf("giaddr = %v, want %v", got.GatewayIPAddr, req.GatewayIPAddr)
			}
			wantY := net.IPv4zero
			if tt.yiaddr != nil {
				wantY = tt.yiaddr
			}
			if !got.YourIPAddr.Equal(wantY) {
				t.Errorf("yiaddr = %v, want %v", got.YourIPAddr, wantY)
			}
			wantCI := net.IPv4zero
			if tt.ciaddr != nil {
				wantCI = tt.ciaddr
			}
			if !got.ClientIPAddr.Equal(wantCI) {
				t.Errorf("ciaddr = %v, want %v", got.ClientIPAddr, wantCI)
			}
			if file != tt.file || got.BootFileName != tt.file || got.BootFileNameOption() != tt.file {
				t.Errorf("file = %q, field %q, option 67 %q; want %q", file, got.BootFileName, got.BootFileNameOption(), tt.file)
			}
			wantSI := net.IPv4zero
			if tt.file != "" {
				wantSI = cfg.ServerIP
			}
			if !got.ServerIPAddr.Equal(wantSI) {
				t.Errorf("siaddr = %v, want %v", got.ServerIPAddr, wantSI)
			}
			if tftp := got.TFTPServerName(); (tftp == "192.168.77.1") != tt.tftp || (!tt.tftp && tftp != "") {
				t.Errorf("option 66 = %q, want present=%v", tftp, tt.tftp)
			}
			if vci := got.ClassIdentifier(); vci != tt.vci {
				t.Errorf("option 60 = %q, want %q", vci, tt.vci)
			}
			if v := got.Options.Get(dhcpv4.OptionVendorSpecificInformation); tt.vendor43 != bytes.Equal(v, []byte{6, 1, 8, 255}) || (!tt.vendor43 && v != nil) {
				t.Errorf("option 43 = %x, want present=%v", v, tt.vendor43)
			}
			if g := got.Options.Get(dhcpv4.OptionClientMachineIdentifier); tt.guidEcho != (g != nil && bytes.Equal(g, c.GUID)) {
				t.Errorf("option 97 = %x, want echo=%v of %x", g, tt.guidEcho, c.GUID)
			}
			if r := got.Options.Get(dhcpv4.OptionRelayAgentInformation); tt.relayOpts != (r != nil) {
				t.Errorf("option 82 = %x, want present=%v", r, tt.relayOpts)
			}
			lease := tt.yiaddr != nil
			if lt := got.IPAddressLeaseTime(0); lease != (lt == 2*time.Hour) || (!lease && lt != 0) {
				t.Errorf("option 51 = %v, want lease options=%v", lt, lease)
			}
			if lease {
				if t1, t2 := got.IPAddressRenewalTime(0), got.IPAddressRebindingTime(0); t1 != time.Hour || t2 != 105*time.Minute {
					t.Errorf("T1, T2 = %v, %v; want 1h, 1h45m", t1, t2)
				}
				if m := got.SubnetMask(); !bytes.Equal(m, net.CIDRMask(24, 32)) {
					t.Errorf("option 1 = %v", m)
				}
				if r := got.Router(); len(r) != 1 || !r[0].Equal(cfg.Ranges[0].Router.AsSlice()) {
					t.Errorf("option 3 = %v", r)
				}
				if d := got.DNS(); len(d) != 2 || !d[0].Equal(cfg.Ranges[0].DNS[0].AsSlice()) || !d[1].Equal(cfg.Ranges[0].DNS[1].AsSlice()) {
					t.Errorf("option 6 = %v", d)
				}
			} else if got.Options.Has(dhcpv4.OptionSubnetMask) || got.Options.Has(dhcpv4.OptionRouter) {
				t.Errorf("lease options in a reply without an address: %v", got.Summary())
			}
		})
	}
}

func TestBootFor(t *testing.T) {
	cfg := testConfig(ModeProxy)
	cfg.HTTPPort = 80
	withARM := cfg
	withARM.ARM64File = "ipxe-arm64.efi"
	tests := []struct {
		name string
		cfg  *Config
		c    Client
		file string
		ok   bool
	}{
		{"bios", &cfg, Client{PXE: true, Arch: ipxe.ArchBIOS}, "undionly.kpxe", true},
		{"efi ia32", &cfg, Client{PXE: true, Arch: ipxe.ArchEFIIA32}, "snponly.efi", true},
		{"efi x64", &cfg, Client{PXE: true, Arch: ipxe.ArchEFI64}, "snponly.efi", true},
		{"efi bc", &cfg, Client{PXE: true, Arch: ipxe.ArchEFIBC}, "snponly.efi", true},
		{"arm64 without binary", &cfg, Client{PXE: true, Arch: ipxe.ArchARM64}, "", false},
		{"arm64 with ARM64File", &withARM, Client{PXE: true, Arch: ipxe.ArchARM64}, "ipxe-arm64.efi", true},
		{"http boot x64, port 80 left out", &cfg, Client{HTTPBoot: true, Arch: ipxe.ArchEFI64HTTP}, "http://192.168.77.1/tftp/snponly.efi", true},
		{"http boot with a PXE arch", &cfg, Client{HTTPBoot: true, Arch: ipxe.ArchEFI64}, "", false},
		{"ipxe any arch", &cfg, Client{PXE: true, IPXE: true, Arch: ipxe.ArchEFIIA32}, "http://192.168.77.1/boot.ipxe", true},
		{"ipxe unknown arch", &cfg, Client{PXE: true, IPXE: true, Arch: ipxe.Arch(0x22)}, "", false},
		{"not pxe", &cfg, Client{Arch: ipxe.ArchBIOS}, "", false},
	}
	for _, tt := range tests {
		b, ok := newReplier(tt.cfg).bootFor(&tt.c)
		if b.file != tt.file || ok != tt.ok {
			t.Errorf("%s: bootFor = %q, %v; want %q, %v", tt.name, b.file, ok, tt.file, tt.ok)
		}
	}
}

// The destinations of RFC 2131 §4.1, and a ciaddr or giaddr that must not
// steer a reply (issue 10, item 10).
func TestReplyAddr(t *testing.T) {
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
	src := &net.UDPAddr{IP: net.IPv4(192, 168, 77, 50), Port: 68}
	src4011 := &net.UDPAddr{IP: net.IPv4(192, 168, 77, 50), Port: 4011}
	pkt := func(typ dhcpv4.MessageType, ci, gi net.IP, broadcast bool, opts ...dhcpv4.Option) *dhcpv4.DHCPv4 {
		p := &dhcpv4.DHCPv4{ClientIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero, Options: dhcpv4.Options{}}
		p.UpdateOption(dhcpv4.OptMessageType(typ))
		for _, o := range opts {
			p.UpdateOption(o)
		}
		if ci != nil {
			p.ClientIPAddr = ci
		}
		if gi != nil {
			p.GatewayIPAddr = gi
		}
		if broadcast {
			p.SetBroadcast()
		}
		return p
	}
	disc, req := dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest
	ci := net.IPv4(192, 168, 77, 50)
	other := net.IPv4(10, 9, 9, 9)
	gi := net.IPv4(10, 1, 2, 1)
	sid := dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 1))
	opt50 := dhcpv4.OptRequestedIPAddress(ci)
	tests := []struct {
		name      string
		req       *dhcpv4.DHCPv4
		typ       dhcpv4.MessageType
		yiaddr    net.IP
		src       net.Addr
		discovery bool
		want      string
	}{
		{"discover, no address", pkt(disc, nil, nil, false), dhcpv4.MessageTypeOffer, ci, src, false, "255.255.255.255:68"},
		{"broadcast flag", pkt(disc, nil, nil, true), dhcpv4.MessageTypeOffer, ci, src, false, "255.255.255.255:68"},
		{"proxy offer", pkt(disc, nil, nil, false), dhcpv4.MessageTypeOffer, nil, src, false, "255.255.255.255:68"},
		{"relayed", pkt(disc, nil, gi, true), dhcpv4.MessageTypeOffer, ci, src, false, "10.1.2.1:67"},
		{"relayed nak", pkt(req, nil, gi, false), dhcpv4.MessageTypeNak, nil, src, false, "10.1.2.1:67"},
		{"renewing", pkt(req, ci, nil, false), dhcpv4.MessageTypeAck, ci, src, false, "192.168.77.50:68"},
		{"rebinding, broadcast bit", pkt(req, ci, nil, true), dhcpv4.MessageTypeAck, ci, src, false, "192.168.77.50:68"},
		{"nak to a renewing client is broadcast", pkt(req, ci, nil, false), dhcpv4.MessageTypeNak, nil, src, false, "255.255.255.255:68"},
		{"discover with ciaddr", pkt(disc, other, nil, false), dhcpv4.MessageTypeOffer, ci, src, false, "255.255.255.255:68"},
		{"proxy discover with ciaddr", pkt(disc, other, nil, false), dhcpv4.MessageTypeOffer, nil, src, false, "255.255.255.255:68"},
		{"selecting with ciaddr", pkt(req, other, nil, false, sid, opt50), dhcpv4.MessageTypeAck, ci, src, false, "255.255.255.255:68"},
		{"init-reboot with ciaddr", pkt(req, other, nil, false, opt50), dhcpv4.MessageTypeAck, ci, src, false, "255.255.255.255:68"},
		{"renewing, ciaddr not the address acked", pkt(req, other, nil, false), dhcpv4.MessageTypeAck, ci, src, false, "255.255.255.255:68"},
		{"proxy ack with ciaddr", pkt(req, other, nil, false, sid), dhcpv4.MessageTypeAck, nil, src, false, "255.255.255.255:68"},
		{"4011 back to source port", pkt(req, ci, nil, false), dhcpv4.MessageTypeAck, nil, src4011, true, "192.168.77.50:4011"},
		{"4011 from 68", pkt(req, ci, nil, false), dhcpv4.MessageTypeAck, nil, src, true, "192.168.77.50:68"},
		{"4011 from unspecified source", pkt(req, nil, nil, false), dhcpv4.MessageTypeAck, nil, &net.UDPAddr{IP: net.IPv4zero, Port: 68}, true, "255.255.255.255:68"},
	}
	for _, tt := range tests {
		if got := replyAddr(tt.req, tt.typ, tt.yiaddr, tt.src, tt.discovery, bcast).String(); got != tt.want {
			t.Errorf("%s: replyAddr = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		ok   bool
	}{{"proxy", ModeProxy, true}, {"FULL", ModeFull, true}, {" full ", ModeFull, true}, {"dhcp", 0, false}, {"", 0, false}} {
		m, err := ParseMode(tt.in)
		if (err == nil) != tt.ok || m != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v", tt.in, m, err)
		}
		if tt.ok && m.String() != map[Mode]string{ModeProxy: "proxy", ModeFull: "full"}[m] {
			t.Errorf("String() = %q", m.String())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := testConfig(ModeFull)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no server ip", func(c *Config) { c.ServerIP = nil }},
		{"ipv6 server ip", func(c *Config) { c.ServerIP = net.ParseIP("fd00::1") }},
		{"no store", func(c *Config) { c.Leases = nil }},
		{"server inside range", func(c *Config) { c.ServerIP = net.IPv4(192, 168, 77, 150) }},
		{"no range", func(c *Config) { c.Ranges = nil }},
		{"bad port", func(c *Config) { c.HTTPPort = 70000 }},
		{"long file", func(c *Config) { c.EFIFile = string(bytes.Repeat([]byte("x"), 100)) }},
		{"unknown mode", func(c *Config) { c.Mode = 7 }},
	}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tt := range tests {
		c := testConfig(ModeFull)
		tt.edit(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	proxy := Config{ServerIP: net.IPv4(10, 0, 0, 1)}
	if _, err := NewServer(proxy); err != nil {
		t.Errorf("minimal proxy config refused: %v", err)
	}
}
