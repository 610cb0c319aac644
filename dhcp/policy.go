package dhcp

import (
	"net"
	"net/netip"
)

// Policy decides whether a client gets an answer at all. It gates the
// whole reply: a refused client gets nothing, not even an address in full
// mode (the inventory's "ignore" for unknown hosts on a shared network).
// Admit is called once per packet from several goroutines at once, so it
// must be safe for concurrent use and cheap (no I/O); it must not keep or
// modify c.
type Policy interface {
	Admit(c *Client) bool
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(*Client) bool

// Admit calls f(c).
func (f PolicyFunc) Admit(c *Client) bool { return f(c) }

// Hosts tells a full-mode server which clients the inventory knows and
// which addresses are reserved for them (dnsmasq's dhcp-host: a fixed
// address per MAC). The server calls it from several goroutines at once,
// on every DISCOVER and REQUEST and, while allocating, with its pool
// locked: implementations must be safe for concurrent use, cheap (a map
// or a local database read) and must not call back into the Server.
type Hosts interface {
	// Lookup reports whether mac is a known host, and the address
	// reserved for it (invalid if none).
	Lookup(mac net.HardwareAddr) (reserved netip.Addr, known bool)
	// ReservedFor returns the MAC the address a is reserved for, or nil.
	ReservedFor(a netip.Addr) net.HardwareAddr
}
