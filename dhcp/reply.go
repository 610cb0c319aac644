package dhcp

import (
	"net"
	"strconv"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/stagehand-dev/stagehand/ipxe"
)

// pxeVendorOpts is option 43 for firmware PXE clients: sub-option 6
// PXE_DISCOVERY_CONTROL = 8 (PXE spec 2.1 table 2-1, bit 3: "boot file name
// present in the offer: download it, no menu, no boot server discovery"),
// then End. Many BIOS PXE ROMs drop a proxy offer without option 43. OVMF
// classifies an offer without a boot menu (sub-option 9) as "BINL" and sends
// its REQUEST to port 4011, which Serve answers.
var pxeVendorOpts = []byte{6, 1, 8, 255}

var (
	vciPXEReply  = []byte("PXEClient")
	vciHTTPReply = []byte("HTTPClient")
)

// Message-type option values, shared by all replies (never mutated).
var (
	mtOffer = []byte{byte(dhcpv4.MessageTypeOffer)}
	mtAck   = []byte{byte(dhcpv4.MessageTypeAck)}
	mtNak   = []byte{byte(dhcpv4.MessageTypeNak)}
)

// bootChoice is a boot file, precomputed at NewServer so that replies cost
// no string building.
type bootChoice struct {
	file    string // BOOTP file field
	fileOpt []byte // option 67
	tftp    bool   // fetched over TFTP: option 66 is sent
}

func newBootChoice(file string, tftp bool) bootChoice {
	return bootChoice{file: file, fileOpt: []byte(file), tftp: tftp}
}

// replier builds replies. It is immutable after newReplier and safe for
// concurrent use.
type replier struct {
	serverIP net.IP // 4 bytes
	serverID []byte // option 54
	tftpName []byte // option 66: ServerIP as text

	bios, efi, arm64, httpEFI, script bootChoice

	// Full mode; the subnet's options come with each reply (leaseOpts).
	leaseTime, t1, t2 []byte
}

func newReplier(cfg *Config) *replier {
	ip := cfg.ServerIP.To4()
	base := "http://" + ip.String()
	if cfg.HTTPPort != 80 {
		base += ":" + strconv.Itoa(cfg.HTTPPort)
	}
	r := &replier{
		serverIP: ip,
		serverID: []byte(ip),
		tftpName: []byte(ip.String()),
		bios:     newBootChoice(cfg.BIOSFile, true),
		efi:      newBootChoice(cfg.EFIFile, true),
		httpEFI:  newBootChoice(base+HTTPBinaryPath+cfg.EFIFile, false),
		script:   newBootChoice(base+ScriptPath, false),
	}
	if cfg.ARM64File != "" {
		r.arm64 = newBootChoice(cfg.ARM64File, true)
	}
	if cfg.Mode == ModeFull {
		// RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
		r.leaseTime = seconds(cfg.LeaseTime)
		r.t1 = seconds(cfg.LeaseTime / 2)
		r.t2 = seconds(cfg.LeaseTime * 7 / 8)
	}
	return r
}

func seconds(d time.Duration) []byte {
	s := uint32(d / time.Second)
	return []byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// bootFor picks the boot file for c, or ok=false when c gets no boot
// options (not a network-boot client, unsupported architecture, ARM64
// without ARM64File).
func (r *replier) bootFor(c *Client) (bootChoice, bool) {
	if !c.Bootable() {
		return bootChoice{}, false
	}
	// iPXE asking again after the chainload must get the script, whatever
	// its architecture, or it loads itself forever (docs/LAB.md).
	if c.IPXE {
		return r.script, true
	}
	if c.HTTPBoot {
		if c.Arch == ipxe.ArchEFI64HTTP {
			return r.httpEFI, true
		}
		return bootChoice{}, false
	}
	switch c.Arch {
	case ipxe.ArchBIOS:
		return r.bios, true
	case ipxe.ArchEFIIA32, ipxe.ArchEFI64, ipxe.ArchEFIBC:
		return r.efi, true
	case ipxe.ArchARM64:
		return r.arm64, r.arm64.file != ""
	}
	return bootChoice{}, false
}

// build makes the reply of type typ to req from client c. yiaddr is the
// leased address in full mode and nil in proxy replies; lease options are
// added when yiaddr is set, those of the subnet (options 1, 3, 6) from
// opts, the options of the subnet yiaddr is in. It returns the boot file
// sent ("" if none). It is pure: table-tested in reply_test.go.
//
// A reply with neither yiaddr nor ciaddr (proxy offers, proxy ACKs on 67,
// NAKs) has no address it could be unicast to, so it carries the
// broadcast flag whatever the client's: a relay delivers by that flag
// (RFC 2131 §4.1), and dnsmasq's --dhcp-relay sent such a reply to
// 0.0.0.0, its own loopback, when the client (iPXE) had the flag clear.
// The same rule gives a relayed NAK the flag §4.3.2 asks for.
func (r *replier) build(req *dhcpv4.DHCPv4, c *Client, typ dhcpv4.MessageType, yiaddr net.IP, opts *leaseOpts) (*dhcpv4.DHCPv4, string) {
	resp, file := r.compose(req, c, typ, yiaddr, opts)
	if resp.YourIPAddr.IsUnspecified() && resp.ClientIPAddr.IsUnspecified() {
		resp.SetBroadcast()
	}
	return resp, file
}

// compose is build without the broadcast rule.
func (r *replier) compose(req *dhcpv4.DHCPv4, c *Client, typ dhcpv4.MessageType, yiaddr net.IP, opts *leaseOpts) (*dhcpv4.DHCPv4, string) {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       make(dhcpv4.Options, 16),
	}
	o := resp.Options
	o[dhcpv4.OptionServerIdentifier.Code()] = r.serverID
	// RFC 6842: echo the client identifier; RFC 3046 §2.2: echo option 82
	// to the relay.
	if v := req.Options.Get(dhcpv4.OptionClientIdentifier); v != nil {
		o[dhcpv4.OptionClientIdentifier.Code()] = v
	}
	if v := req.Options.Get(dhcpv4.OptionRelayAgentInformation); v != nil {
		o[dhcpv4.OptionRelayAgentInformation.Code()] = v
	}
	switch typ {
	case dhcpv4.MessageTypeNak:
		// RFC 2131 table 3: a NAK carries no address and no parameters.
		o[dhcpv4.OptionDHCPMessageType.Code()] = mtNak
		return resp, ""
	case dhcpv4.MessageTypeAck:
		o[dhcpv4.OptionDHCPMessageType.Code()] = mtAck
		if ci := req.ClientIPAddr.To4(); ci != nil {
			resp.ClientIPAddr = ci
		}
	default:
		o[dhcpv4.OptionDHCPMessageType.Code()] = mtOffer
	}
	if yiaddr != nil {
		resp.YourIPAddr = yiaddr
		if opts != nil {
			o[dhcpv4.OptionSubnetMask.Code()] = opts.netmask
			if opts.router != nil {
				o[dhcpv4.OptionRouter.Code()] = opts.router
			}
			if opts.dns != nil {
				o[dhcpv4.OptionDomainNameServer.Code()] = opts.dns
			}
		}
		o[dhcpv4.OptionIPAddressLeaseTime.Code()] = r.leaseTime
		o[dhcpv4.OptionRenewTimeValue.Code()] = r.t1
		o[dhcpv4.OptionRebindingTimeValue.Code()] = r.t2
	}
	b, ok := r.bootFor(c)
	if !ok {
		return resp, ""
	}
	resp.ServerIPAddr = r.serverIP
	resp.BootFileName = b.file
	o[dhcpv4.OptionBootfileName.Code()] = b.fileOpt
	if b.tftp {
		o[dhcpv4.OptionTFTPServerName.Code()] = r.tftpName
	}
	if c.HTTPBoot {
		// UEFI spec §24.7.2: an HTTP boot offer must carry "HTTPClient".
		o[dhcpv4.OptionClassIdentifier.Code()] = vciHTTPReply
	} else {
		// PXE spec §2.2.5: without "PXEClient" a PXE client does not take
		// the reply as boot information (iPXE included).
		o[dhcpv4.OptionClassIdentifier.Code()] = vciPXEReply
		if !c.IPXE {
			o[dhcpv4.OptionVendorSpecificInformation.Code()] = pxeVendorOpts
		}
	}
	if c.GUID != nil {
		o[dhcpv4.OptionClientMachineIdentifier.Code()] = c.GUID
	}
	return resp, b.file
}

// Ports of RFC 2131 §4.1 and PXE boot server discovery.
const (
	ServerPort    = 67
	ClientPort    = 68
	DiscoveryPort = 4011
)

// replyAddr is where the reply to req goes, by RFC 2131 §4.1:
//   - a request to the boot server discovery port (4011) is answered to
//     its source: the client already has an address (PXE spec §2.2.6);
//   - relayed (giaddr set, and trusted: relayTrusted): to the relay's
//     server port;
//   - NAK, not relayed: broadcast, the client's address is in doubt;
//   - an ACK to a REQUEST in RENEWING or REBINDING state (ciaddr set, no
//     server identifier, no requested address: §4.3.2) for the address
//     in ciaddr: unicast to ciaddr:68. Every other message has ciaddr 0
//     (§4.4.1, table 5); a ciaddr in a DISCOVER, a SELECTING or
//     INIT-REBOOT REQUEST, or one that is not the address ACKed, is
//     ignored, or a sender could steer the reply anywhere;
//   - otherwise broadcast, with the broadcast bit set or not: §4.1 lets a
//     server that cannot unicast to yiaddr and chaddr broadcast instead,
//     and a UDP socket cannot add the ARP entry for a client that has no
//     address yet.
func replyAddr(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, yiaddr net.IP, src net.Addr, discovery bool, bcast *net.UDPAddr) *net.UDPAddr {
	if discovery {
		if u, ok := src.(*net.UDPAddr); ok && u.IP.To4() != nil && !u.IP.IsUnspecified() {
			return u
		}
	}
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: ServerPort}
	}
	if typ == dhcpv4.MessageTypeAck && renewing(req) && req.ClientIPAddr.Equal(yiaddr) {
		return &net.UDPAddr{IP: req.ClientIPAddr.To4(), Port: ClientPort}
	}
	return bcast
}

// renewing reports whether req is a REQUEST of a client in RENEWING or
// REBINDING state (RFC 2131 §4.3.2): ciaddr set, neither a server
// identifier nor a requested address.
func renewing(req *dhcpv4.DHCPv4) bool {
	ci := req.ClientIPAddr.To4()
	return ci != nil && !ci.IsUnspecified() && req.MessageType() == dhcpv4.MessageTypeRequest &&
		!req.Options.Has(dhcpv4.OptionServerIdentifier) && !req.Options.Has(dhcpv4.OptionRequestedIPAddress)
}
