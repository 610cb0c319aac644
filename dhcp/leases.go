package dhcp

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Lease is an address bound to a client in full mode.
type Lease struct {
	MAC      net.HardwareAddr
	IP       netip.Addr
	Expiry   time.Time
	Hostname string
}

// LeaseStore persists full-mode leases, one per MAC. The server calls it
// from several goroutines at once; implementations must be safe for
// concurrent use. When an expired lease's address is given to another
// client, the old lease is left in the store: on load, of two leases on
// one address the later expiry wins.
type LeaseStore interface {
	// Leases returns all stored leases; called once, by NewServer.
	Leases() ([]Lease, error)
	// PutLease stores l, replacing any lease of l.MAC. It must be durable
	// when it returns: the server sends the DHCPACK only afterwards.
	PutLease(l Lease) error
	// DeleteLease removes the lease of mac; no lease is not an error.
	DeleteLease(mac net.HardwareAddr) error
}

// MemLeases is an in-memory LeaseStore for tests. The zero value is empty
// and ready to use.
type MemLeases struct {
	mu sync.Mutex
	m  map[string]Lease
}

// Leases implements LeaseStore; the result is sorted by IP.
func (s *MemLeases) Leases() ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.m))
	for _, l := range s.m {
		out = append(out, cloneLease(l))
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// PutLease implements LeaseStore.
func (s *MemLeases) PutLease(l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Lease)
	}
	s.m[l.MAC.String()] = cloneLease(l)
	return nil
}

// DeleteLease implements LeaseStore.
func (s *MemLeases) DeleteLease(mac net.HardwareAddr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, mac.String())
	return nil
}

// Lease returns the stored lease of mac, for assertions in tests.
func (s *MemLeases) Lease(mac net.HardwareAddr) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[mac.String()]
	return cloneLease(l), ok
}

func cloneLease(l Lease) Lease {
	l.MAC = slices.Clone(l.MAC)
	return l
}
