package dhcp

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// How long an OFFER holds its address for the client (RFC 2131 §4.3.1
// leaves it to the server; clients REQUEST within seconds), and how long a
// DECLINEd address stays out of use (§4.3.3: "the server MUST mark the
// network address as not available").
const (
	offerHold   = 30 * time.Second
	declineHold = 10 * time.Minute
)

type hwKey [6]byte

func keyOf(mac net.HardwareAddr) (k hwKey) {
	copy(k[:], mac)
	return k
}

type slotState uint8

const (
	slotFree slotState = iota
	slotOffered
	// slotLeased: bound to mac. An expired lease stays bound, so the same
	// client gets the same address back, until another client needs it.
	slotLeased
	slotDeclined
)

type slot struct {
	state    slotState
	mac      hwKey
	until    time.Time // end of offer, lease or quarantine
	hostname string
}

// pool is the full-mode address pool. All methods are safe for concurrent
// use and take the clock as an argument.
type pool struct {
	mu    sync.Mutex
	start uint32
	slots []slot
	byMAC map[hwKey]uint32 // slot index of the client's offer or lease
}

func newPool(start, end netip.Addr) *pool {
	n := u32(end) - u32(start) + 1
	return &pool{start: u32(start), slots: make([]slot, n), byMAC: make(map[hwKey]uint32)}
}

func (p *pool) index(a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		return 0, false
	}
	i := u32(a) - p.start
	return i, u32(a) >= p.start && i < uint32(len(p.slots))
}

func (p *pool) addr(i uint32) netip.Addr { return addrFromU32(p.start + i) }

// load binds stored leases. A lease outside the range (the range was
// changed) is skipped; of two leases on one address the later expiry wins.
func (p *pool) load(ls []Lease) (loaded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range ls {
		i, ok := p.index(l.IP)
		if !ok || len(l.MAC) != 6 {
			continue
		}
		k := keyOf(l.MAC)
		s := &p.slots[i]
		if s.state == slotLeased {
			if !l.Expiry.After(s.until) {
				continue
			}
			delete(p.byMAC, s.mac)
		}
		if old, ok := p.byMAC[k]; ok {
			p.slots[old] = slot{}
		}
		*s = slot{state: slotLeased, mac: k, until: l.Expiry, hostname: l.Hostname}
		p.byMAC[k] = i
		loaded++
	}
	return loaded
}

// usable reports whether a slot can be reserved for a new client.
func usable(s *slot, now time.Time) bool {
	switch s.state {
	case slotFree:
		return true
	case slotOffered, slotDeclined:
		return now.After(s.until)
	}
	return false
}

// offer reserves an address for mac: its current offer or lease, else the
// requested address (option 50) if available, else the first available
// slot probing linearly from a hash of the MAC (deterministic, and no ping:
// QEMU-LAB.md pitfall 4), else the oldest-probed expired lease of another
// client. ok=false: the pool is exhausted.
func (p *pool) offer(mac net.HardwareAddr, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.byMAC[k]; ok {
		// Hold it through the REQUEST, also an expired lease.
		if s := &p.slots[i]; s.until.Before(now.Add(offerHold)) {
			s.until = now.Add(offerHold)
		}
		return p.addr(i), true
	}
	if i, ok := p.index(requested); ok && usable(&p.slots[i], now) {
		p.reserve(i, k, now)
		return p.addr(i), true
	}
	n := uint32(len(p.slots))
	h := hashMAC(k) % n
	for j := range n {
		i := (h + j) % n
		if usable(&p.slots[i], now) {
			p.reserve(i, k, now)
			return p.addr(i), true
		}
	}
	for j := range n {
		i := (h + j) % n
		if s := &p.slots[i]; s.state == slotLeased && now.After(s.until) {
			// The previous client's stored lease stays; it has the
			// earlier expiry, so load prefers the new one.
			p.reserve(i, k, now)
			return p.addr(i), true
		}
	}
	return netip.Addr{}, false
}

func (p *pool) reserve(i uint32, k hwKey, now time.Time) {
	s := &p.slots[i]
	if s.state == slotOffered || s.state == slotLeased {
		if cur, ok := p.byMAC[s.mac]; ok && cur == i {
			delete(p.byMAC, s.mac)
		}
	}
	*s = slot{state: slotOffered, mac: k, until: now.Add(offerHold)}
	p.byMAC[k] = i
}

// check reports whether a is mac's offered or leased address, and if so
// holds it for the time a LeaseStore write takes, so an expired lease
// cannot be reclaimed by another client meanwhile.
func (p *pool) check(mac net.HardwareAddr, a netip.Addr, now time.Time) bool {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.byMAC[k]
	if !ok || p.addr(i) != a {
		return false
	}
	if s := &p.slots[i]; s.until.Before(now.Add(offerHold)) {
		s.until = now.Add(offerHold)
	}
	return true
}

// bind records mac's lease on a once it is stored.
func (p *pool) bind(mac net.HardwareAddr, a netip.Addr, expiry time.Time, hostname string) {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index(a)
	if !ok {
		return
	}
	s := &p.slots[i]
	if (s.state == slotOffered || s.state == slotLeased) && s.mac != k {
		// Taken over meanwhile (only possible if the store write outlived
		// offerHold); the stored lease has the later expiry and wins.
		if cur, ok := p.byMAC[s.mac]; ok && cur == i {
			delete(p.byMAC, s.mac)
		}
	}
	if old, ok := p.byMAC[k]; ok && old != i {
		p.slots[old] = slot{}
	}
	*s = slot{state: slotLeased, mac: k, until: expiry, hostname: hostname}
	p.byMAC[k] = i
}

// forget drops mac's pending offer: the client chose another server.
func (p *pool) forget(mac net.HardwareAddr) {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.byMAC[k]; ok && p.slots[i].state == slotOffered {
		p.slots[i] = slot{}
		delete(p.byMAC, k)
	}
}

// release frees a if it is mac's; it reports whether it was.
func (p *pool) release(mac net.HardwareAddr, a netip.Addr) bool {
	return p.unbind(mac, a, slot{})
}

// decline quarantines a if it is mac's (offered or leased).
func (p *pool) decline(mac net.HardwareAddr, a netip.Addr, now time.Time) bool {
	return p.unbind(mac, a, slot{state: slotDeclined, until: now.Add(declineHold)})
}

func (p *pool) unbind(mac net.HardwareAddr, a netip.Addr, next slot) bool {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.byMAC[k]
	if !ok || p.addr(i) != a {
		return false
	}
	p.slots[i] = next
	delete(p.byMAC, k)
	return true
}

// hashMAC is FNV-1a, inline to stay allocation-free.
func hashMAC(k hwKey) uint32 {
	h := uint32(2166136261)
	for _, b := range k {
		h ^= uint32(b)
		h *= 16777619
	}
	return h
}
