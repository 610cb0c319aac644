package dhcp

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/stagehand-dev/stagehand/ipxe"
)

// ErrMalformed is returned (wrapped) by Classify for a packet no DHCP
// server can answer: not a BOOTREQUEST, no message type, not Ethernet.
var ErrMalformed = errors.New("dhcp: malformed request")

// Prebuilt so that a flood of bad packets costs no allocation.
var (
	errNotRequest  = fmt.Errorf("%w: not a BOOTREQUEST", ErrMalformed)
	errNotEthernet = fmt.Errorf("%w: not an Ethernet hardware address", ErrMalformed)
	errNoMsgType   = fmt.Errorf("%w: no DHCP message type (BOOTP is not served)", ErrMalformed)
)

// Client is a classified DHCP request. Byte slices are copies owned by the
// Client and may be kept.
type Client struct {
	MAC net.HardwareAddr
	// Arch is the first value of option 93; without option 93, the
	// "Arch:NNNNN" field of option 60; ipxe.ArchUnknown if neither. An
	// unsupported wire value is kept as is (Arch.Known() reports false).
	Arch ipxe.Arch
	// PXE: option 60 starts with "PXEClient".
	PXE bool
	// HTTPBoot: option 60 starts with "HTTPClient" (UEFI HTTP boot).
	HTTPBoot bool
	// IPXE: the request comes from iPXE (user class "iPXE" in option 77,
	// or iPXE's encapsulated option 175).
	IPXE bool
	// GUID is option 97 (type 0 and a 16-byte UUID) if well formed, else
	// nil. PXE spec §2.2.5: a proxy reply must echo it.
	GUID []byte
	// UNDI is option 94 (type 1, major, minor) if present.
	UNDI []byte
	// Relay is giaddr for a relayed request, else nil.
	Relay net.IP
	// Hostname is option 12, if any.
	Hostname string
	XID      dhcpv4.TransactionID
	MsgType  dhcpv4.MessageType
}

// Bootable reports whether c is a network-boot client of a supported
// architecture, i.e. one that gets boot options. In proxy mode it is the
// only kind of client that gets an answer.
func (c *Client) Bootable() bool {
	return (c.PXE || c.HTTPBoot || c.IPXE) && c.Arch.Known()
}

var (
	vciPXE   = []byte("PXEClient")
	vciHTTP  = []byte("HTTPClient")
	ucIPXE   = []byte("iPXE")
	archMark = []byte(":Arch:")
)

const (
	optIPXEEncap = 175 // iPXE's encapsulated options, sent by every iPXE build
	maxHostname  = 63
)

// Classify turns a parsed request into a Client. It is pure and cheap.
// It returns an error wrapping ErrMalformed only for a packet that cannot
// be answered at all; a non-PXE or unknown-architecture client is not an
// error: Client.Bootable reports false and the server decides by mode.
func Classify(req *dhcpv4.DHCPv4) (Client, error) {
	var c Client
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return c, errNotRequest
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return c, errNotEthernet
	}
	mt := req.Options.Get(dhcpv4.OptionDHCPMessageType)
	if len(mt) != 1 || mt[0] == 0 {
		return c, errNoMsgType
	}
	c.MsgType = dhcpv4.MessageType(mt[0])
	c.XID = req.TransactionID
	c.MAC = req.ClientHWAddr
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		c.Relay = gi
	}

	vci := req.Options.Get(dhcpv4.OptionClassIdentifier)
	c.PXE = bytes.HasPrefix(vci, vciPXE)
	c.HTTPBoot = bytes.HasPrefix(vci, vciHTTP)

	// Option 77 is sent raw ("iPXE") by iPXE and length-prefixed by RFC
	// 3004 clients; a substring match covers both.
	c.IPXE = bytes.Contains(req.Options.Get(dhcpv4.OptionUserClassInformation), ucIPXE) ||
		req.Options.Has(dhcpv4.GenericOptionCode(optIPXEEncap))

	c.Arch = ipxe.ArchUnknown
	if a := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(a) >= 2 && len(a)%2 == 0 {
		c.Arch = ipxe.Arch(uint16(a[0])<<8 | uint16(a[1]))
	} else if a, ok := archFromVCI(vci); ok {
		c.Arch = a
	}

	if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); len(g) == 17 && g[0] == 0 {
		c.GUID = g
	}
	if u := req.Options.Get(dhcpv4.OptionClientNetworkInterfaceIdentifier); len(u) == 3 {
		c.UNDI = u
	}
	if h := req.Options.Get(dhcpv4.OptionHostName); len(h) > 0 && len(h) <= maxHostname && printable(h) {
		c.Hostname = string(h)
	}
	return c, nil
}

// archFromVCI reads the five decimal digits after ":Arch:" in a PXE or
// HTTP boot vendor class ("PXEClient:Arch:00007:UNDI:003000", PXE spec
// §2.2.1, UEFI spec §24.7.2).
func archFromVCI(vci []byte) (ipxe.Arch, bool) {
	i := bytes.Index(vci, archMark)
	if i < 0 {
		return 0, false
	}
	d := vci[i+len(archMark):]
	if len(d) < 5 {
		return 0, false
	}
	var n uint32
	for _, b := range d[:5] {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint32(b-'0')
	}
	if n > 0xffff {
		return 0, false
	}
	return ipxe.Arch(n), true
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
