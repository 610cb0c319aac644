package dhcp

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// A slow OnReplies (the inventory's event write) must not hold up
// replies: every DISCOVER is answered while the hook is stuck, replies
// beyond its queue are counted as unreported, the replies queued meanwhile
// reach the hook together in one call, and Serve waits for the hook calls
// in hand before it returns.
func TestOnReplyOffReplyPath(t *testing.T) {
	cfg := testConfig(ModeProxy)
	started, release := make(chan struct{}, 10), make(chan struct{})
	var mu sync.Mutex
	calls, reported := 0, 0
	cfg.OnReplies = func(rs []Reply) {
		started <- struct{}{}
		<-release
		mu.Lock()
		calls++
		reported += len(rs)
		mu.Unlock()
	}
	// Registered before startLab, so it runs after Serve has returned.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if calls != 2 || reported != 3 {
			t.Errorf("by the time Serve returned, OnReplies ran %d times with %d replies; want 2 calls (the first reply, then the two queued behind it) with 3", calls, reported)
		}
	})
	l := startLab(t, cfg, func(s *Server) { s.hookQueue = 2 })
	disc := loadPacket(t, "bios-pxe-discover")
	l.expect(l.dhcp, withMAC(disc, 1))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("OnReplies never called")
	}
	// The hook is blocked; two replies fit its queue, three do not.
	for i := byte(2); i <= 6; i++ {
		if r := l.expect(l.dhcp, withMAC(disc, i)); r.MessageType() != dhcpv4.MessageTypeOffer {
			t.Fatalf("reply %d: %v", i, r.Summary())
		}
	}
	if st := l.stats(func(st Stats) bool { return !(st.Offers != 6 || st.HooksDropped != 3) }); st.Offers != 6 || st.HooksDropped != 3 {
		t.Fatalf("offers %d, hooks dropped %d; want 6 and 3", st.Offers, st.HooksDropped)
	}
	// The hook is still stuck when the test ends and startLab's cleanup
	// cancels Serve; it is released a little later, and Serve must have
	// waited for the three calls.
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
}

// barrierLeases lets PutLease return only once n writes are in flight at
// the same time, as a store that groups concurrent writes into one commit
// needs them to be.
type barrierLeases struct {
	MemLeases
	n      int
	mu     sync.Mutex
	inside int
	all    chan struct{}
}

func (b *barrierLeases) PutLease(l Lease) error {
	b.mu.Lock()
	b.inside++
	if b.inside == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
		return errors.New("barrier: fewer lease writes in flight than expected")
	}
	return b.MemLeases.PutLease(l)
}

// Full mode keeps many REQUESTs in flight while their leases are written,
// so that a store committing them together sees them together: 16
// clients REQUEST at once and all get their ACKs, which needs all 16
// PutLease calls to be waiting at the same moment.
func TestFullLeaseWritesInFlight(t *testing.T) {
	const n = 16
	store := &barrierLeases{n: n, all: make(chan struct{})}
	cfg := testConfig(ModeFull)
	cfg.Leases = store
	l := startLab(t, cfg)
	disc := loadPacket(t, "bios-pxe-discover")
	var reqs []*dhcpv4.DHCPv4
	for i := range byte(n) {
		d := withMAC(disc, i)
		reqs = append(reqs, requestFor(d, l.expect(l.dhcp, d)))
	}
	for _, r := range reqs {
		l.send(l.dhcp, r.ToBytes())
	}
	acks := map[dhcpv4.TransactionID]bool{}
	for len(acks) < n {
		r := l.recv(15 * time.Second)
		if r == nil {
			t.Fatalf("%d ACKs of %d", len(acks), n)
		}
		if r.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("reply %v", r.Summary())
		}
		acks[r.TransactionID] = true
	}
	for _, r := range reqs {
		if _, ok := store.Lease(r.ClientHWAddr); !ok {
			t.Errorf("no lease stored for %v", r.ClientHWAddr)
		}
	}
}
