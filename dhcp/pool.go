package dhcp

import (
	"net"
	"net/netip"
	"slices"
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

// A DECLINE is believed only for the address the client is in the middle
// of getting: a pending offer, or a lease ACKed at most declineWindow ago.
// A client probes an address right after the ACK (RFC 2131 §4.4.1): RFC
// 5227's probes end within 9 s (PROBE_WAIT 1 s, three probes up to 2 s
// apart, ANNOUNCE_WAIT 2 s), busybox udhcpc's arping within 2 s. A
// DECLINE of a lease of old is forged; the shorter the window, the less
// a forger watching the exchange can do. And one MAC may keep at most maxDeclinesPerMAC addresses in
// quarantine at once: a host's MAC is in every broadcast it sends, so a
// stranger can forge it, and each DECLINE would otherwise take an address
// for declineHold.
const (
	declineWindow     = 10 * time.Second
	maxDeclinesPerMAC = 2
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
	state slotState
	// mac holds the offer or lease; of a quarantined slot, it is the
	// client that declined it.
	mac      hwKey
	until    time.Time // end of offer, lease or quarantine
	acked    time.Time // when the lease was ACKed; zero for one loaded at start
	hostname string
	// unknown: mac is not in the inventory; such slots count against
	// the pool's unknown-client share.
	unknown bool
}

// heldUnknown reports whether s counts against the unknown-client share:
// offered to, leased by or declined by an unknown client, lapsed or not
// (a lapsed one is reclaimed by the next client, which keeps the count
// honest). Counting quarantine keeps random MACs from taking the pool
// with DECLINEs beyond their share.
func (s *slot) heldUnknown() bool {
	return s.unknown && s.state != slotFree
}

// pool is the full-mode address pool. All methods are safe for concurrent
// use and take the clock as an argument.
type pool struct {
	mu sync.Mutex
	// spans are the ranges of one subnet, in slot order; slots holds one
	// slot per address of each.
	spans []span
	slots []slot
	byMAC map[hwKey]uint32 // slot index of the client's offer or lease
	// unknownMax bounds the slots unknown clients may hold at once, so
	// that a flood of random MACs cannot starve the inventory's hosts;
	// unknownHeld counts the slots they hold (slot.heldUnknown).
	unknownMax, unknownHeld int
	// declined lists the quarantined slots of each MAC that declined
	// some, lapsed ones included until the slot is reused: at most one
	// entry per slot in all.
	declined map[hwKey][]uint32
}

// span is one range of a pool: addresses start..start+n-1 in slots
// first..first+n-1.
type span struct{ start, first, n uint32 }

// newPool makes the pool of one subnet's ranges (checked: they do not
// overlap).
func newPool(rs []Range) *pool {
	p := &pool{byMAC: make(map[hwKey]uint32), declined: make(map[hwKey][]uint32)}
	n := uint32(0)
	for _, r := range rs {
		sp := span{start: u32(r.Start), first: n, n: u32(r.End) - u32(r.Start) + 1}
		p.spans = append(p.spans, sp)
		n += sp.n
	}
	p.slots = make([]slot, n)
	p.unknownMax = int(n)
	return p
}

// limitUnknown lets unknown clients hold at most pct percent of the
// pool (rounded up, at least one address).
func (p *pool) limitUnknown(pct int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unknownMax = max(1, (len(p.slots)*pct+99)/100)
}

// set replaces slot i, keeping unknownHeld and declined in step. Every
// state change goes through here.
func (p *pool) set(i uint32, next slot) {
	s := &p.slots[i]
	if s.heldUnknown() {
		p.unknownHeld--
	}
	if next.heldUnknown() {
		p.unknownHeld++
	}
	if s.state == slotDeclined {
		l := slices.DeleteFunc(p.declined[s.mac], func(j uint32) bool { return j == i })
		if len(l) == 0 {
			delete(p.declined, s.mac)
		} else {
			p.declined[s.mac] = l
		}
	}
	if next.state == slotDeclined {
		p.declined[next.mac] = append(p.declined[next.mac], i)
	}
	*s = next
}

// Why offerTo found no address.
type offerResult uint8

const (
	offerOK offerResult = iota
	offerExhausted
	// offerUnknownCapped: free addresses remain, but unknown clients
	// hold their whole share of the pool.
	offerUnknownCapped
)

// ask is a DISCOVER as the pool sees it.
type ask struct {
	mac       net.HardwareAddr
	requested netip.Addr // option 50, may be invalid
	unknown   bool       // mac is not in the inventory
	// reservedElsewhere reports an address reserved for another client,
	// never to be offered to this one; nil means no reservations.
	reservedElsewhere func(netip.Addr) bool
}

func (q *ask) forbidden(a netip.Addr) bool {
	return q.reservedElsewhere != nil && q.reservedElsewhere(a)
}

func (p *pool) index(a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		return 0, false
	}
	v := u32(a)
	for _, sp := range p.spans {
		if v >= sp.start && v-sp.start < sp.n {
			return sp.first + v - sp.start, true
		}
	}
	return 0, false
}

func (p *pool) addr(i uint32) netip.Addr {
	for _, sp := range p.spans {
		if i-sp.first < sp.n {
			return addrFromU32(sp.start + i - sp.first)
		}
	}
	return netip.Addr{}
}

// load binds stored leases. A lease outside the range (the range was
// changed) is skipped; of two leases on one address the later expiry wins.
// skip drops a lease (an address since reserved for another host);
// unknown marks leases of clients not in the inventory. Either may be nil.
func (p *pool) load(ls []Lease, skip, unknown func(Lease) bool) (loaded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range ls {
		i, ok := p.index(l.IP)
		if !ok || len(l.MAC) != 6 || (skip != nil && skip(l)) {
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
			p.set(old, slot{})
		}
		p.set(i, slot{state: slotLeased, mac: k, until: l.Expiry, hostname: l.Hostname, unknown: unknown != nil && unknown(l)})
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

// offer is offerTo for a known client with no reservations in play.
func (p *pool) offer(mac net.HardwareAddr, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	a, r := p.offerTo(ask{mac: mac, requested: requested}, now)
	return a, r == offerOK
}

// offerTo reserves an address for q.mac: its current offer or lease, else
// the requested address (option 50) if available, else the first
// available slot probing linearly from a hash of the MAC (deterministic,
// and no ping: docs/LAB.md pitfall 4), else the oldest-probed expired
// lease of another client. Addresses reserved for other clients are never
// offered. An unknown client gets a new slot only while unknown clients
// hold less than their share, or by reclaiming one another unknown client
// left lapse.
func (p *pool) offerTo(q ask, now time.Time) (netip.Addr, offerResult) {
	k := keyOf(q.mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.byMAC[k]; ok {
		if q.forbidden(p.addr(i)) {
			// Reserved for another host since it was given out: the
			// client is starting over (DISCOVER), so it moves now.
			p.set(i, slot{})
			delete(p.byMAC, k)
		} else {
			// Hold it through the REQUEST, also an expired lease.
			if s := &p.slots[i]; s.until.Before(now.Add(offerHold)) {
				s.until = now.Add(offerHold)
			}
			return p.addr(i), offerOK
		}
	}
	capped := q.unknown && p.unknownHeld >= p.unknownMax
	// fits: a new slot for q keeps the unknown share.
	fits := func(s *slot) bool { return !capped || s.heldUnknown() }
	if i, ok := p.index(q.requested); ok && usable(&p.slots[i], now) && fits(&p.slots[i]) && !q.forbidden(q.requested) {
		p.reserve(i, k, q.unknown, now)
		return p.addr(i), offerOK
	}
	n := uint32(len(p.slots))
	h := hashMAC(k) % n
	for j := range n {
		i := (h + j) % n
		if s := &p.slots[i]; usable(s, now) && fits(s) && !q.forbidden(p.addr(i)) {
			p.reserve(i, k, q.unknown, now)
			return p.addr(i), offerOK
		}
	}
	for j := range n {
		i := (h + j) % n
		if s := &p.slots[i]; s.state == slotLeased && now.After(s.until) && fits(s) && !q.forbidden(p.addr(i)) {
			// The previous client's stored lease stays; it has the
			// earlier expiry, so load prefers the new one.
			p.reserve(i, k, q.unknown, now)
			return p.addr(i), offerOK
		}
	}
	if capped {
		return netip.Addr{}, offerUnknownCapped
	}
	return netip.Addr{}, offerExhausted
}

// claim reserves a, the address reserved for mac in the inventory, if it
// is in the range: it takes the slot from a lapsed offer or expired lease
// of another client, and from a pending offer (offers bind nobody), but
// not from another client's live lease: two hosts must not use one
// address, so the reservation waits until that lease ends or its holder
// is refused at its next REQUEST. ok reports whether mac now holds a (an
// address outside the range needs no slot: ok, nothing done).
func (p *pool) claim(mac net.HardwareAddr, a netip.Addr, now time.Time) bool {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index(a)
	if !ok {
		return true
	}
	s := &p.slots[i]
	switch {
	case (s.state == slotOffered || s.state == slotLeased) && s.mac == k:
		if s.until.Before(now.Add(offerHold)) {
			s.until = now.Add(offerHold)
		}
		return true
	case s.state == slotLeased && !now.After(s.until):
		return false
	}
	p.reserve(i, k, false, now)
	return true
}

// reserve offers slot i to k, dropping k's other slot and the slot's
// previous holder.
func (p *pool) reserve(i uint32, k hwKey, unknown bool, now time.Time) {
	s := &p.slots[i]
	if s.state == slotOffered || s.state == slotLeased {
		if cur, ok := p.byMAC[s.mac]; ok && cur == i {
			delete(p.byMAC, s.mac)
		}
	}
	if old, ok := p.byMAC[k]; ok && old != i {
		p.set(old, slot{})
	}
	p.set(i, slot{state: slotOffered, mac: k, until: now.Add(offerHold), unknown: unknown})
	p.byMAC[k] = i
}

// check reports whether a is mac's offered or leased address, and if so
// holds it for the time a LeaseStore write takes, so an expired lease
// cannot be reclaimed by another client meanwhile.
func (p *pool) check(mac net.HardwareAddr, a netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.holding(keyOf(mac), a)
	if !ok {
		return false
	}
	if s := &p.slots[i]; s.until.Before(now.Add(offerHold)) {
		s.until = now.Add(offerHold)
	}
	return true
}

// bind records mac's lease on a once it is stored. An address outside
// the range (a reservation) has no slot: mac's slot in the range, if
// any, is freed.
func (p *pool) bind(mac net.HardwareAddr, a netip.Addr, expiry time.Time, hostname string, now time.Time) {
	p.bindAs(mac, a, expiry, hostname, false, now)
}

// bindAs is bind for a client the inventory may not know; now is the
// ACK's time, which opens the client's declineWindow (zero: none).
func (p *pool) bindAs(mac net.HardwareAddr, a netip.Addr, expiry time.Time, hostname string, unknown bool, now time.Time) {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index(a)
	if !ok {
		if old, ok := p.byMAC[k]; ok {
			p.set(old, slot{})
			delete(p.byMAC, k)
		}
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
		p.set(old, slot{})
	}
	p.set(i, slot{state: slotLeased, mac: k, until: expiry, acked: now, hostname: hostname, unknown: unknown})
	p.byMAC[k] = i
}

// forget drops mac's pending offer: the client chose another server.
func (p *pool) forget(mac net.HardwareAddr) {
	p.free(mac, func(s *slot) bool { return s.state == slotOffered })
}

// drop frees mac's offer or lease: the client has moved to another
// subnet, whose lease replaced this one in the store.
func (p *pool) drop(mac net.HardwareAddr) {
	p.free(mac, func(*slot) bool { return true })
}

// free empties mac's slot if which says so.
func (p *pool) free(mac net.HardwareAddr, which func(*slot) bool) {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.byMAC[k]; ok && which(&p.slots[i]) {
		p.set(i, slot{})
		delete(p.byMAC, k)
	}
}

// release frees a if it is mac's; it reports whether it was.
func (p *pool) release(mac net.HardwareAddr, a netip.Addr) bool {
	return p.unbind(mac, a, func(hwKey, *slot) (slot, bool) { return slot{}, true })
}

// What decline did.
type declineResult uint8

const (
	declineOK declineResult = iota
	// declineNotHeld: a is not mac's pending offer nor a lease ACKed
	// within declineWindow.
	declineNotHeld
	// declineCapped: mac has maxDeclinesPerMAC addresses in quarantine.
	declineCapped
)

// decline quarantines a for declineHold if mac is in the middle of
// getting it (see declineWindow) and holds fewer than maxDeclinesPerMAC
// quarantined addresses. The quarantine counts against the unknown
// share when mac is unknown.
func (p *pool) decline(mac net.HardwareAddr, a netip.Addr, now time.Time) declineResult {
	r := declineNotHeld
	p.unbind(mac, a, func(k hwKey, s *slot) (slot, bool) {
		pending := s.state == slotOffered && !now.After(s.until)
		justAcked := s.state == slotLeased && !s.acked.IsZero() && now.Sub(s.acked) <= declineWindow
		if !pending && !justAcked {
			return slot{}, false
		}
		held := 0
		for _, j := range p.declined[k] {
			if !now.After(p.slots[j].until) {
				held++
			}
		}
		if held >= maxDeclinesPerMAC {
			r = declineCapped
			return slot{}, false
		}
		r = declineOK
		return slot{state: slotDeclined, mac: k, until: now.Add(declineHold), unknown: s.unknown}, true
	})
	return r
}

// unbind replaces the slot of mac's offer or lease on a with what next
// makes of it, unless next declines; it reports whether it did. next runs
// with p.mu held.
func (p *pool) unbind(mac net.HardwareAddr, a netip.Addr, next func(k hwKey, s *slot) (slot, bool)) bool {
	k := keyOf(mac)
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.holding(k, a)
	if !ok {
		return false
	}
	n, ok := next(k, &p.slots[i])
	if !ok {
		return false
	}
	p.set(i, n)
	delete(p.byMAC, k)
	return true
}

// holding returns the slot of k's offer or lease if its address is a.
// Called with p.mu held.
func (p *pool) holding(k hwKey, a netip.Addr) (uint32, bool) {
	i, ok := p.byMAC[k]
	return i, ok && p.addr(i) == a
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
