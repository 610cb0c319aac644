package attrib

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// LeaseTable is an in-memory Leases: a mirror of the leases the DHCP
// server holds, kept in step by the code that stores them (load the
// stored leases at start, then Put after every durable write and Delete
// after every removal). Lookups never touch the store, so a TFTP
// transfer or a stage-2 request is attributed without a database read.
// The zero value is empty and ready; safe for concurrent use. Its size
// is bounded by the DHCP server's address pool.
type LeaseTable struct {
	mu    sync.RWMutex
	byMAC map[[6]byte]leased
	byIP  map[netip.Addr][6]byte
}

type leased struct {
	ip     netip.Addr
	expiry time.Time
}

// Put records that ip is leased to mac until expiry, replacing mac's
// previous lease and any other MAC's claim on ip.
func (t *LeaseTable) Put(mac net.HardwareAddr, ip netip.Addr, expiry time.Time) {
	ip = ip.Unmap()
	if len(mac) != 6 || !ip.Is4() {
		return
	}
	k := [6]byte(mac)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byMAC == nil {
		t.byMAC, t.byIP = map[[6]byte]leased{}, map[netip.Addr][6]byte{}
	}
	if old, ok := t.byMAC[k]; ok && t.byIP[old.ip] == k {
		delete(t.byIP, old.ip)
	}
	if other, ok := t.byIP[ip]; ok && other != k {
		delete(t.byMAC, other)
	}
	t.byMAC[k] = leased{ip: ip, expiry: expiry}
	t.byIP[ip] = k
}

// Delete forgets mac's lease.
func (t *LeaseTable) Delete(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	k := [6]byte(mac)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byMAC[k]; ok {
		if t.byIP[old.ip] == k {
			delete(t.byIP, old.ip)
		}
		delete(t.byMAC, k)
	}
}

// Lease implements Leases.
func (t *LeaseTable) Lease(mac net.HardwareAddr) (netip.Addr, time.Time, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, time.Time{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.byMAC[[6]byte(mac)]
	return l.ip, l.expiry, ok
}

// LeaseAt implements Leases.
func (t *LeaseTable) LeaseAt(ip netip.Addr) (net.HardwareAddr, time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	k, ok := t.byIP[ip.Unmap()]
	if !ok {
		return nil, time.Time{}, false
	}
	return net.HardwareAddr(k[:]), t.byMAC[k].expiry, true
}
