// Package neigh looks up the kernel's IPv4 neighbour (ARP) table: which
// MAC address an on-link IP address belongs to.
//
// stagehand uses it as the last resort for naming the host behind a TFTP
// transfer in proxyDHCP mode. There, the address a firmware uses is handed
// out by the site's DHCP server, and stagehand learns it by overhearing the
// client's broadcast REQUEST. On a lossy network that one frame can be
// lost while the site server still gets its copy, and the transfer would be
// recorded on no host. But a TFTP transfer cannot happen without ARP: by
// the time it ends, the kernel has resolved the client's address, so its
// table names the MAC. Clients behind a router never appear there under
// their own address (the router's MAC does, under the router's address), so
// a lookup cannot misattribute a routed client.
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

// Lookup returns the MAC address the kernel has resolved for ip, reading
// ProcPath. ok is false when there is no resolved entry.
func Lookup(ip netip.Addr) (mac net.HardwareAddr, ok bool, err error) {
	return LookupIn(ProcPath, ip)
}

// LookupIn is Lookup on the table at path (for another namespace, e.g.
// /proc/thread-self/net/arp on a thread switched into it).
func LookupIn(path string, ip netip.Addr) (net.HardwareAddr, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return find(f, ip)
}

// find scans a table in /proc/net/arp's format:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
//
// and returns the first resolved entry for ip. Rows it cannot read are
// skipped: the format belongs to the kernel, and a row it adds in a form
// we do not know must not hide the others.
func find(r io.Reader, ip netip.Addr) (net.HardwareAddr, bool, error) {
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
		if len(f) < 4 || f[0] != want {
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
