package ra

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ErrNoIPv6 is returned by Listen when the interface has IPv6 off
// (disable_ipv6, or a kernel without IPv6): there is nothing to answer.
var ErrNoIPv6 = errors.New("IPv6 is off on the interface")

// allRouters is where solicitations go (RFC 4861 §6.3.7).
var allRouters = netip.MustParseAddr("ff02::2")

// Conn is an ICMPv6 socket for router discovery on one interface.
type Conn struct {
	c   *ndp.Conn
	ifi *net.Interface
}

// Listen opens the socket on iface: router solicitations (sent to the
// all-routers group, joined here) and advertisements, nothing else.
// It is bound to no address, so it works while the interface's
// link-local address is still tentative or not yet assigned (a bridge
// with no port up has none): that address is only needed to send.
func Listen(iface string) (*Conn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	if off, err := ipv6Off(iface); err != nil || off {
		return nil, fmt.Errorf("%s: %w", iface, ErrNoIPv6)
	}
	nc, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if errors.Is(err, syscall.EAFNOSUPPORT) {
		return nil, fmt.Errorf("%s: %w", iface, ErrNoIPv6)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: ICMPv6 socket: %w", iface, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err = nc.SetICMPFilter(&f); err == nil {
		err = nc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)
	}
	if err == nil {
		err = nc.JoinGroup(allRouters)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: ICMPv6 socket: %w", iface, err)
	}
	return &Conn{c: nc, ifi: ifi}, nil
}

// ipv6Off reports whether the kernel has IPv6 off on iface.
func ipv6Off(iface string) (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + iface + "/disable_ipv6")
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// Close closes the socket; a read in progress returns an error.
func (c *Conn) Close() error { return c.c.Close() }

// read returns the next router solicitation or advertisement received
// on the interface. One that was forwarded (hop limit below 255, RFC
// 4861 §6.1) or came in on another interface (the socket is bound to
// none) is skipped.
func (c *Conn) read() (ndp.Message, netip.Addr, error) {
	for {
		m, cm, src, err := c.c.ReadFrom()
		if err != nil {
			return nil, netip.Addr{}, err
		}
		if cm == nil || cm.HopLimit != ndp.HopLimit || cm.IfIndex != c.ifi.Index {
			continue
		}
		return m, src.WithZone(""), nil
	}
}

// Neither message carries our source link-layer address option (RFC
// 4861 §4.1, §4.2 allow leaving it out): a bridge's Ethernet address
// changes as ports come and go, and a stale one would misdirect the
// answer. A host that needs our address resolves it.

// advertise sends dst an advertisement that configures nothing: the
// zero RouterAdvertisement is router lifetime 0, M and O clear, hop
// limit, reachable time and retransmit timer unspecified (RFC 4861
// §4.2), and no options, so no prefix information.
func (c *Conn) advertise(dst netip.Addr) error {
	return c.c.WriteTo(&ndp.RouterAdvertisement{}, nil, dst)
}

// solicit asks the routers on the link to advertise themselves now.
func (c *Conn) solicit() error {
	return c.c.WriteTo(&ndp.RouterSolicitation{}, nil, allRouters)
}
