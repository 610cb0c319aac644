package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"
)

// Paths on the HTTP server that replies point to. The HTTP layer serves the
// iPXE script at ScriptPath and the same iPXE binaries as TFTP under
// HTTPBinaryPath, so a UEFI HTTP boot client (arch 16) is sent to
// http://ServerIP:HTTPPort/tftp/<EFIFile>.
const (
	ScriptPath     = "/boot.ipxe"
	HTTPBinaryPath = "/tftp/"
)

// Defaults for zero Config fields.
const (
	DefaultHTTPPort  = 80
	DefaultBIOSFile  = "undionly.kpxe"
	DefaultEFIFile   = "snponly.efi"
	DefaultLeaseTime = time.Hour
	// DefaultUnknownShare leaves a fifth of the range to known hosts
	// without a reservation, however many strangers ask.
	DefaultUnknownShare = 80
)

// maxPoolSize bounds the full-mode range: the pool keeps one slot per
// address in memory and scans it to allocate.
const maxPoolSize = 1 << 16

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	Mode Mode
	// ServerIP is our IPv4 address on the boot network: siaddr
	// (next-server), option 54, TFTP server name and HTTP URLs. Required.
	ServerIP net.IP
	// HTTPPort is the port of the HTTP URLs (default 80).
	HTTPPort int
	// BIOSFile is the TFTP boot file for BIOS PXE (default "undionly.kpxe").
	BIOSFile string
	// EFIFile is the boot file for UEFI x64, IA32 and EFI BC, over TFTP,
	// and over HTTP for UEFI HTTP boot (default "snponly.efi").
	EFIFile string
	// ARM64File is the TFTP boot file for UEFI ARM64. Debian's ipxe package
	// ships no ARM64 build, so it is empty by default and ARM64 clients are
	// not booted (full mode still gives them an address).
	ARM64File string

	// Full mode only.
	//
	// Ranges are the address pools (at most 65536 addresses in all),
	// each with its subnet's options. A range in ServerIP's subnet
	// serves the local segment; one in another subnet serves requests
	// relayed from it (see Range). Ranges must not overlap; ranges of one
	// subnet share it exactly, with one router and DNS list.
	Ranges    []Range
	LeaseTime time.Duration // option 51 (default 1h)
	Leases    LeaseStore    // required
	// Hosts supplies reservations and tells known hosts from unknown
	// ones. Nil: no reservations, and every client counts as known.
	//
	// A host with a reserved address always gets it, also when the
	// dynamic pool is exhausted, and no other client is offered it. The
	// address may lie outside the ranges but must be in one of their
	// subnets, not ServerIP itself, nor a subnet's network or broadcast
	// address, nor a range's router; otherwise it is ignored with a
	// warning and the host is served from the pool. A host whose request
	// comes from another subnet than its reservation's (relayed from
	// elsewhere) is served from that subnet's pool, with a warning: an
	// address is only good on its own subnet. A client
	// holding a live lease on an address reserved later keeps it until
	// its next REQUEST (renewal or reboot), which is NAKed so that it
	// moves; meanwhile the reserved host is served from the pool.
	Hosts Hosts
	// UnknownShare is the percentage of each subnet's ranges that clients Hosts
	// does not know may hold at once (offers and leases), so that random
	// MACs cannot starve the inventory's hosts. 1..100; 0 means
	// DefaultUnknownShare. Unused when Hosts is nil.
	UnknownShare int

	// TrustedRelays lists the relay agents whose relayed requests are
	// answered, by the address they put in giaddr: the reply goes to that
	// address, so an unlisted giaddr would let any sender steer replies
	// to an address of its choosing. Nil (the default) answers only
	// requests from the local segment (giaddr 0). In full mode a giaddr
	// inside the subnet of a range that is not ServerIP's is trusted
	// without being listed (configuring the range declared the subnet
	// and its relay), and a relayed request is served only from the
	// range of its subnet (giaddr's, or RFC 3527 link selection's): a
	// listed relay whose subnet no range serves is still dropped.
	TrustedRelays []netip.Prefix

	// Policy gates the whole reply: a client it refuses gets no answer at
	// all, in both modes (also no address in full mode); DECLINEs pass it
	// too. Nil admits every client the mode would answer.
	Policy Policy
	Log    zerolog.Logger
	// OnReplies, if set, is told of the replies sent, in order, off the
	// reply path: replies never wait for it. Each Serve calls it from one
	// goroutine with the replies sent since its previous call returned
	// (up to 512), so a hook that writes a database records a burst in one
	// commit. It may block; when it falls thousands of replies behind,
	// further replies go unreported and are counted in Stats.HooksDropped.
	// The slice is reused after the call returns. Serve returns after the
	// last call.
	OnReplies func([]Reply)
	// OnSiteAddress, if set, is called in proxy mode with a network-boot
	// client's MAC and the address it REQUESTs from the site's DHCP
	// server, which stagehand does not answer but sees. It runs on the
	// read path: it must be cheap and must not block.
	OnSiteAddress func(mac net.HardwareAddr, a netip.Addr)
}

// Reply describes a reply that was sent, for OnReplies.
type Reply struct {
	Client   Client
	Type     dhcpv4.MessageType // offer, ack or nak
	IP       netip.Addr         // yiaddr; invalid in proxy replies and NAKs
	BootFile string             // "" when no boot options were sent
	Port     int                // local port the request came in on (67, 4011)
}

func (c *Config) setDefaults() {
	if c.HTTPPort == 0 {
		c.HTTPPort = DefaultHTTPPort
	}
	if c.BIOSFile == "" {
		c.BIOSFile = DefaultBIOSFile
	}
	if c.EFIFile == "" {
		c.EFIFile = DefaultEFIFile
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.UnknownShare == 0 {
		c.UnknownShare = DefaultUnknownShare
	}
}

func (c *Config) validate() error {
	ip := c.ServerIP.To4()
	if ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("dhcp: ServerIP %v is not an IPv4 address", c.ServerIP)
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		return fmt.Errorf("dhcp: HTTPPort %d out of range", c.HTTPPort)
	}
	for _, f := range []string{c.BIOSFile, c.EFIFile, c.ARM64File} {
		// The BOOTP file field holds 128 bytes with a terminating NUL, and
		// the HTTP URL built from EFIFile must fit too.
		if len(f) > 80 {
			return fmt.Errorf("dhcp: boot file name %q longer than 80 bytes", f)
		}
	}
	for _, r := range c.TrustedRelays {
		if !r.IsValid() || !r.Addr().Is4() {
			return fmt.Errorf("dhcp: trusted relay %v is not an IPv4 prefix", r)
		}
	}
	switch c.Mode {
	case ModeProxy:
		return nil
	case ModeFull:
	default:
		return fmt.Errorf("dhcp: unknown mode %d", int(c.Mode))
	}
	if c.Leases == nil {
		return errors.New("dhcp: full mode needs a LeaseStore")
	}
	sip, _ := netip.AddrFromSlice(ip)
	if err := CheckRanges(c.Ranges, sip); err != nil {
		return err
	}
	if c.UnknownShare < 1 || c.UnknownShare > 100 {
		return fmt.Errorf("dhcp: UnknownShare %d%% outside 1..100", c.UnknownShare)
	}
	if c.LeaseTime < time.Minute || c.LeaseTime > 365*24*time.Hour {
		return fmt.Errorf("dhcp: LeaseTime %v outside 1m..1y", c.LeaseTime)
	}
	return nil
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrFromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
