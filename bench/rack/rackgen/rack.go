package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// hostBase is the first address of the rack's hosts. They live in
// 10.250.32.0/19 (8190 addresses, enough for N=5000 with each host on an
// address of its own) on the client side of the veth; the server, at
// 10.250.4.1, reaches them through one next hop (the client namespace's
// 10.250.4.2), so its neighbour table holds one entry, not N: the kernel's
// ARP table limit (gc_thresh3, 1024 by default) is shared by all namespaces.
var hostBase = netip.MustParseAddr("10.250.32.0")

// host is one simulated machine.
type host struct {
	idx    int
	mac    net.HardwareAddr
	ip     netip.Addr
	serial string
	name   string
	uuid   [16]byte
}

// rackHost returns host i (0-based). Everything is derived from i, so the
// manifest, the addresses and the load agree without sharing a file.
func rackHost(i int) host {
	n := uint32(i + 1)
	h := host{
		idx:    i,
		mac:    net.HardwareAddr{0x02, 0x52, 0x4b, byte(n >> 16), byte(n >> 8), byte(n)},
		ip:     hostAddr(i),
		serial: fmt.Sprintf("RK%07d", n),
		name:   fmt.Sprintf("rack-node-%05d", n),
	}
	// A fixed, distinct SMBIOS UUID per host (version 4 layout).
	copy(h.uuid[:], []byte{0x5e, 0x7a, 0x9e, 0x00, 0x00, 0x00, 0x40, 0x00, 0x80, 0x00})
	h.uuid[12], h.uuid[13], h.uuid[14], h.uuid[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return h
}

// hostAddr is host i's address: the i-th address after hostBase whose
// last octet is neither 0 nor 255, which some stacks treat specially.
func hostAddr(i int) netip.Addr {
	per := 254
	b := hostBase.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8
	v += uint32(i/per) << 8
	v += uint32(i%per) + 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (h host) uuidString() string {
	u := h.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// maxHosts keeps the rack inside 10.250.32.0/19.
const maxHosts = 8000

func runList(what string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	n := fs.Int("n", 100, "number of hosts")
	dev := fs.String("dev", "", "addrs: the client namespace's interface")
	profile := fs.String("profile", "rack", "csv: the profile every host gets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > maxHosts {
		return fmt.Errorf("-n %d: want 1..%d", *n, maxHosts)
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	switch what {
	case "hosts":
		for i := range *n {
			h := rackHost(i)
			fmt.Fprintf(w, "%s %s\n", h.mac, h.ip)
		}
	case "addrs":
		if *dev == "" {
			return fmt.Errorf("addrs: -dev is required")
		}
		for i := range *n {
			fmt.Fprintf(w, "address add %s/32 dev %s\n", rackHost(i).ip, *dev)
		}
	case "csv":
		fmt.Fprintln(w, "mac,name,serial,profile")
		for i := range *n {
			h := rackHost(i)
			fmt.Fprintf(w, "%s,%s,%s,%s\n", h.mac, h.name, h.serial, *profile)
		}
	}
	return nil
}
