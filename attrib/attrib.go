package attrib

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Source is the kind of evidence that ties a MAC to an address, in the
// order of the package doc (lower is better).
type Source uint8

const (
	SourceNone      Source = iota
	SourceLease            // a lease this server granted
	SourceDHCP             // an overheard or answered DHCP exchange
	SourceNeighbour        // the kernel's neighbour entry on the serving interface
	SourceClaim            // a served stage-2 request; never vouches
	numSources
)

func (s Source) String() string {
	switch s {
	case SourceLease:
		return "lease"
	case SourceDHCP:
		return "dhcp"
	case SourceNeighbour:
		return "neighbour"
	case SourceClaim:
		return "claim"
	}
	return "none"
}

// Leases answers for the leases this server granted. Implementations are
// safe for concurrent use and do no storage I/O (see LeaseTable).
type Leases interface {
	// Lease returns the address leased to mac and when the lease ends.
	Lease(mac net.HardwareAddr) (ip netip.Addr, expiry time.Time, ok bool)
	// LeaseAt returns the MAC holding ip and when its lease ends.
	LeaseAt(ip netip.Addr) (mac net.HardwareAddr, expiry time.Time, ok bool)
}

// Neighbours is the kernel's neighbour table on the serving interface
// (neigh.Table with Device set). Safe for concurrent use; an error is
// logged by nobody and counts as no entry.
type Neighbours interface {
	Lookup(ip netip.Addr) (net.HardwareAddr, bool, error)
}

// Defaults for Config's zero values.
const (
	// DefaultMax is above the largest racks we measure (5 000 hosts,
	// bench/rack), so a whole rack's addresses are remembered at once:
	// about 2 MiB when full.
	DefaultMax = 16384
	// DefaultTTL outlasts a host that waits in iPXE for an operator:
	// iPXE polls stage 2 every minute for hours without a new DHCP
	// exchange. An address that moves within sight is overwritten sooner.
	DefaultTTL = 12 * time.Hour
)

// Config builds an Index. Zero values are documented defaults.
type Config struct {
	Leases     Leases     // nil: no lease evidence (proxy mode)
	Neighbours Neighbours // nil: no kernel evidence
	TTL        time.Duration
	Max        int
	Now        func() time.Time
}

// Index holds the evidence. Build it with New.
type Index struct {
	cfg Config

	mu    sync.Mutex
	byIP  map[netip.Addr]*entry
	order []netip.Addr // insertion order of byIP, for its bound
}

type entry struct {
	seen [numSources]sighting
}

type sighting struct {
	mac [6]byte
	at  time.Time // zero: none
}

// New returns an empty Index.
func New(cfg Config) *Index {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Index{cfg: cfg, byIP: map[netip.Addr]*entry{}}
}

// Observe records that source saw mac at ip. Only SourceDHCP and
// SourceClaim are observed; leases and neighbours are asked, not told,
// and other sources, non-IPv4 addresses and MACs that are not Ethernet
// are ignored. Cheap and non-blocking: safe on a DHCP read loop.
func (x *Index) Observe(ip netip.Addr, mac net.HardwareAddr, source Source) {
	ip = ip.Unmap()
	if (source != SourceDHCP && source != SourceClaim) || !ip.Is4() || len(mac) != 6 {
		return
	}
	now := x.cfg.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byIP[ip]
	if !ok {
		x.evict()
		e = &entry{}
		x.byIP[ip] = e
		x.order = append(x.order, ip)
	}
	e.seen[source] = sighting{mac: [6]byte(mac), at: now}
}

// evict makes room for one more address. Called with x.mu held.
func (x *Index) evict() {
	for len(x.order) >= x.cfg.Max {
		delete(x.byIP, x.order[0])
		x.order[0] = netip.Addr{}
		x.order = x.order[1:]
	}
}

// observed returns the sighting of source at ip if it has not expired.
func (x *Index) observed(ip netip.Addr, source Source, now time.Time) (net.HardwareAddr, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.byIP[ip]
	if !ok {
		return nil, false
	}
	s := e.seen[source]
	if s.at.IsZero() || now.Sub(s.at) > x.cfg.TTL {
		return nil, false
	}
	return net.HardwareAddr(s.mac[:]), true
}

// MACAt returns who is at ip, from the best evidence that names it, and
// that evidence's source. It may read the kernel's table; Remembered
// does not.
func (x *Index) MACAt(ip netip.Addr) (net.HardwareAddr, Source, bool) {
	return x.lookup(ip.Unmap(), true)
}

// Remembered is MACAt without the kernel's table: no I/O at all, for a
// path that must not wait (a refusal on a read loop).
func (x *Index) Remembered(ip netip.Addr) (net.HardwareAddr, Source, bool) {
	return x.lookup(ip.Unmap(), false)
}

func (x *Index) lookup(ip netip.Addr, kernel bool) (net.HardwareAddr, Source, bool) {
	if !ip.Is4() {
		return nil, SourceNone, false
	}
	now := x.cfg.Now()
	for s := SourceLease; s < numSources; s++ {
		if s == SourceNeighbour && !kernel {
			continue
		}
		if mac, ok := x.at(ip, s, now); ok {
			return mac, s, true
		}
	}
	return nil, SourceNone, false
}

// at asks one source who is at ip.
func (x *Index) at(ip netip.Addr, s Source, now time.Time) (net.HardwareAddr, bool) {
	switch s {
	case SourceLease:
		if x.cfg.Leases == nil {
			return nil, false
		}
		mac, exp, ok := x.cfg.Leases.LeaseAt(ip)
		return mac, ok && now.Before(exp)
	case SourceNeighbour:
		if x.cfg.Neighbours == nil {
			return nil, false
		}
		mac, ok, err := x.cfg.Neighbours.Lookup(ip)
		return mac, ok && err == nil
	}
	return x.observed(ip, s, now)
}

// Vouch reports whether some evidence ties mac to ip, and the best such
// source. A claim never vouches. Evidence that names another MAC at ip
// does not refute mac: a later source may still name it (an address can
// move while the old sighting lives).
func (x *Index) Vouch(mac net.HardwareAddr, ip netip.Addr) (Source, bool) {
	ip = ip.Unmap()
	if !ip.Is4() || len(mac) != 6 {
		return SourceNone, false
	}
	now := x.cfg.Now()
	if x.cfg.Leases != nil {
		if a, exp, ok := x.cfg.Leases.Lease(mac); ok && a == ip && now.Before(exp) {
			return SourceLease, true
		}
	}
	for _, s := range []Source{SourceDHCP, SourceNeighbour} {
		if got, ok := x.at(ip, s, now); ok && string(got) == string(mac) {
			return s, true
		}
	}
	return SourceNone, false
}

// Len is the number of addresses remembered (for tests and metrics).
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byIP)
}
