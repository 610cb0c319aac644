package inventory

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Many DHCP workers waiting for their leases at once share commits, and
// every write lands, also with failing event writes (unknown MACs, which
// used to share db.Batch transactions with leases) going on beside them.
func TestPutLeaseConcurrentGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 256
	exp := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	st := s.db.Stats()
	before := st.TxStats.GetWrite()
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
	// One commit per lease would write at least two pages each (data and
	// meta); grouped, a handful of commits write a few pages each.
	st = s.db.Stats()
	if w := st.TxStats.GetWrite() - before; w >= n {
		t.Errorf("%d page writes for %d concurrent leases: not grouped", w, n)
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

// Writes of one MAC from one caller apply in order, also when they land
// in one group.
func TestLeaseOpsApplyInOrder(t *testing.T) {
	s := openTestStore(t)
	ops := []leaseOp{
		{mac: []byte("02:00:00:00:00:01"), val: []byte(`{"mac":"02:00:00:00:00:01","ip":"10.0.0.1"}`)},
		{mac: []byte("02:00:00:00:00:01")},
		{mac: []byte("02:00:00:00:00:02")},
		{mac: []byte("02:00:00:00:00:02"), val: []byte(`{"mac":"02:00:00:00:00:02","ip":"10.0.0.2"}`)},
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return applyLeaseOps(tx, ops) }); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].MAC != "02:00:00:00:00:02" || ls[0].IP != "10.0.0.2" {
		t.Fatalf("leases = %+v, want only 02:00:00:00:00:02", ls)
	}
}

// A bad write in a group fails alone; the rest of the group is stored.
func TestLeaseGroupIsolatesFailure(t *testing.T) {
	s := openTestStore(t)
	var w leaseWriter
	good := leaseOp{mac: []byte("02:00:00:00:00:03"), val: []byte(`{"mac":"02:00:00:00:00:03","ip":"10.0.0.3"}`), done: make(chan error, 1)}
	bad := leaseOp{mac: []byte{}, val: []byte(`{}`), done: make(chan error, 1)} // bbolt refuses an empty key
	w.pending = []leaseOp{bad, good}
	w.busy = true
	w.commit(s.db)
	if err := <-bad.done; err == nil {
		t.Error("empty key stored without error")
	}
	if err := <-good.done; err != nil {
		t.Errorf("good write failed with its group: %v", err)
	}
	if ls, _ := s.Leases(); len(ls) != 1 || ls[0].IP != "10.0.0.3" {
		t.Errorf("leases = %+v", ls)
	}
	if w.busy || len(w.pending) != 0 {
		t.Errorf("writer left busy=%v pending=%d", w.busy, len(w.pending))
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
