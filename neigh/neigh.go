// Package neigh looks up the kernel's IPv4 neighbour (ARP) table: which
// MAC address an on-link IP address belongs to, and on which interface.
//
// It is the third and last kind of evidence package attrib consults when
// it ties an address to a host (after a lease this server granted and an
// overheard DHCP exchange). In proxyDHCP mode stagehand learns a host's
// address by overhearing one broadcast REQUEST; on a lossy network that
// frame can be lost while the site server still gets its copy. But a TFTP
// transfer or an HTTP request cannot happen without ARP: by then the
// kernel has resolved the client's address, so its table names the MAC.
// Clients behind a router never appear there under their own address (the
// router's MAC does, under the router's address), so a lookup cannot
// misattribute a routed client; and Table restricts a lookup to the
// serving interface, so an address on-link on another network does not
// count either.
package neigh

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ProcPath is the kernel's IPv4 neighbour table for the calling process's
// network namespace.
const ProcPath = "/proc/net/arp"

// atfCom is ATF_COM from <net/if_arp.h>: the entry is resolved. Entries
// still resolving (INCOMPLETE) or failed show flags 0x0 and a zero MAC.
const atfCom = 0x2

// maxLines bounds a read of the table: the kernel's default gc_thresh3 is
// 1024 entries per namespace; a site tuned for thousands of hosts raises
// it, and the bound sits far above any such setting.
const maxLines = 1 << 20

// Lookup returns the MAC address the kernel has resolved for ip on any
// interface, reading ProcPath. ok is false when there is no resolved entry.
func Lookup(ip netip.Addr) (mac net.HardwareAddr, ok bool, err error) {
	return LookupIn(ProcPath, ip)
}

// LookupIn is Lookup on the table at path (for another namespace, e.g.
// /proc/thread-self/net/arp on a thread switched into it).
func LookupIn(path string, ip netip.Addr) (net.HardwareAddr, bool, error) {
	return Table{Path: path}.Lookup(ip)
}

// Table is the kernel's table seen through one interface. An entry names
// the interface it was resolved on (the Device column): a server that
// serves hosts on one interface asks only about that one, so an address
// that is on-link elsewhere (a management network, a VM bridge) never
// names a host of the provisioning network. The zero value reads
// ProcPath for every interface. A Table is a value; Lookup reads the
// file afresh on each call and is safe for concurrent use.
type Table struct {
	Path   string // "" means ProcPath
	Device string // "" means any interface
}

// Lookup returns the MAC the kernel has resolved for ip on t's interface.
func (t Table) Lookup(ip netip.Addr) (net.HardwareAddr, bool, error) {
	path := t.Path
	if path == "" {
		path = ProcPath
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return find(f, ip, t.Device)
}

// find scans a table in /proc/net/arp's format:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
//
// and returns the first resolved entry for ip on dev ("": any). Rows it cannot read are
// skipped: the format belongs to the kernel, and a row it adds in a form
// we do not know must not hide the others.
func find(r io.Reader, ip netip.Addr, dev string) (net.HardwareAddr, bool, error) {
	if !ip.Is4() {
		return nil, false, nil
	}
	want := ip.String()
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan(); n++ {
		if n == 0 {
			continue // header
		}
		if n > maxLines {
			return nil, false, fmt.Errorf("neighbour table longer than %d lines", maxLines)
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != want || (dev != "" && (len(f) < 6 || f[5] != dev)) {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil || flags&atfCom == 0 {
			continue
		}
		mac, err := net.ParseMAC(f[3])
		if err != nil || len(mac) != 6 || isZero(mac) {
			continue
		}
		return mac, true, nil
	}
	return nil, false, sc.Err()
}

func isZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
