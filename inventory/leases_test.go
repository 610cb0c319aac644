package inventory

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory/storage/boltstore"
)

// Many DHCP workers waiting for their leases at once share commits, and
// every write lands, also with failing event writes (unknown MACs, which
// used to share bbolt Batch transactions with leases) going on beside them.
func TestPutLeaseConcurrentGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 256
	exp := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	eng := s.eng.(*boltstore.DB)
	before := eng.Commits()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
			errs <- s.PutLease(Lease{MAC: mac, IP: fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff), Expiry: exp})
		})
		wg.Go(func() {
			if err := s.AddEvent(fmt.Sprintf("02:ff:00:00:%02x:%02x", i>>8, i&0xff), "dhcp", "x"); !errors.Is(err, ErrNotFound) {
				errs <- fmt.Errorf("AddEvent of an unknown MAC: %v", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Grouped, a handful of commits carry all the leases.
	if c := eng.Commits() - before; c >= n {
		t.Errorf("%d commits for %d concurrent leases: not grouped", c, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != n {
		t.Fatalf("%d leases after reopen, want %d", len(ls), n)
	}
	for i, l := range ls {
		if want := fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff); l.IP != want || !l.Expiry.Equal(exp) {
			t.Errorf("lease %d = %+v, want IP %s", i, l, want)
		}
	}
}

// After Close a lease write fails at once instead of hanging a worker.
func TestPutLeaseAfterClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.PutLease(Lease{MAC: "02:00:00:00:00:04", IP: "10.0.0.4"}); err == nil {
		t.Fatal("PutLease on a closed store succeeded")
	}
}

// BenchmarkPutLeaseParallel: 64 writers at once per CPU, as DHCP workers
// waiting for their ACKs; each op is one durable lease.
func BenchmarkPutLeaseParallel(b *testing.B) {
	s := openTestStore(b)
	var next sync.Mutex
	i := 0
	b.SetParallelism(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			next.Lock()
			i++
			k := i % 50000
			next.Unlock()
			if err := s.PutLease(Lease{MAC: fmt.Sprintf("02:00:00:%02x:%02x:%02x", k>>16, (k>>8)&0xff, k&0xff), IP: "10.0.0.1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
