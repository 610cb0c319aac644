package boltstore

import (
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

const col storage.Collection = "c"

func openTest(t *testing.T) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "t.db"), Options{Collections: []storage.Collection{col}, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// group makes the Updates of fns land in one group, queued in the order
// given: a first Update holds the committer until all of them are
// pending. It returns their errors.
func group(t *testing.T, d *DB, fns ...func(storage.Tx) error) []error {
	t.Helper()
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- d.Update(func(storage.Tx) error { close(started); <-release; return nil })
	}()
	<-started // the committer is busy with the holder from here on
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = d.Update(fn) })
		waitPending(t, d, i+1)
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	return errs
}

// waitPending waits until n Updates are queued. It is bounded by
// iterations, not by time: the test fails, never hangs.
func waitPending(t *testing.T, d *DB, n int) {
	t.Helper()
	for i := 0; ; i++ {
		d.mu.Lock()
		got := len(d.pending)
		d.mu.Unlock()
		if got == n {
			return
		}
		if i > 20000 {
			t.Fatalf("%d of %d Updates pending", got, n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func get(t *testing.T, d *DB, key string) string {
	t.Helper()
	var v string
	if err := d.View(func(tx storage.Tx) error { v = string(tx.Get(col, key)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// A function that refuses before writing fails alone: the others of its
// group run once and commit together.
func TestGroupRefusalWithoutWriteRunsOthersOnce(t *testing.T) {
	d := openTest(t)
	var runs [3]atomic.Int64
	var hooks atomic.Int64
	refusal := errors.New("refused")
	put := func(i int, k string) func(storage.Tx) error {
		return func(tx storage.Tx) error {
			runs[i].Add(1)
			tx.Put(col, k, []byte("v"))
			tx.OnCommit(func() { hooks.Add(1) })
			return nil
		}
	}
	before := d.Commits()
	errs := group(t, d, put(0, "a"), func(tx storage.Tx) error {
		runs[1].Add(1)
		tx.OnCommit(func() { hooks.Add(100) })
		return refusal
	}, put(2, "b"))
	if errs[0] != nil || !errors.Is(errs[1], refusal) || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	for i := range runs {
		if n := runs[i].Load(); n != 1 {
			t.Errorf("function %d ran %d times, want once", i, n)
		}
	}
	if get(t, d, "a") != "v" || get(t, d, "b") != "v" {
		t.Error("the good writes are not stored")
	}
	if h := hooks.Load(); h != 2 {
		t.Errorf("commit hooks sum %d, want 2 (the refused function's never runs)", h)
	}
	if c := d.Commits() - before; c != 2 {
		t.Errorf("%d commits, want 2 (the holder's and the group's)", c)
	}
}

// A function that wrote and then failed poisons its group: its writes
// are rolled back, it is answered alone, the others run again and
// commit, and the hooks of the rolled-back run never fire.
func TestGroupFailureAfterWriteIsIsolated(t *testing.T) {
	d := openTest(t)
	var runsGood atomic.Int64
	var hooks atomic.Int64
	broken := errors.New("storage failure")
	errs := group(t, d,
		func(tx storage.Tx) error {
			runsGood.Add(1)
			tx.Put(col, "good", []byte("v"))
			tx.OnCommit(func() { hooks.Add(1) })
			return nil
		},
		func(tx storage.Tx) error {
			tx.Put(col, "bad", []byte("v"))
			return broken
		},
		func(tx storage.Tx) error {
			tx.Put(col, "", []byte("empty key")) // bbolt refuses it
			return nil
		})
	if errs[0] != nil || !errors.Is(errs[1], broken) || errs[2] == nil {
		t.Fatalf("errors %v", errs)
	}
	if get(t, d, "good") != "v" || get(t, d, "bad") != "" {
		t.Errorf("stored good=%q bad=%q", get(t, d, "good"), get(t, d, "bad"))
	}
	if n := runsGood.Load(); n < 2 {
		t.Errorf("the good function ran %d times; its first run was rolled back with the group", n)
	}
	if h := hooks.Load(); h != 1 {
		t.Errorf("the good function's hook ran %d times, want once", h)
	}
}

// The functions of one group run in arrival order, so a put and a
// delete of one key end as the last caller asked.
func TestGroupAppliesInOrder(t *testing.T) {
	d := openTest(t)
	var order []int
	step := func(i int, del bool) func(storage.Tx) error {
		return func(tx storage.Tx) error {
			order = append(order, i)
			if del {
				tx.Delete(col, "k")
			} else {
				tx.Put(col, "k", []byte{byte('0' + i)})
			}
			return nil
		}
	}
	errs := group(t, d, step(0, false), step(1, true), step(2, false))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 || get(t, d, "k") != "2" {
		t.Fatalf("order %v, k=%q", order, get(t, d, "k"))
	}
}

// After Close a write fails at once instead of hanging its caller.
func TestUpdateAfterClose(t *testing.T) {
	d := openTest(t)
	d.Close()
	if err := d.Update(func(tx storage.Tx) error { tx.Put(col, "k", []byte("v")); return nil }); err == nil {
		t.Fatal("Update on a closed store succeeded")
	}
}

// A scan sees keys in order, only under its prefix, and stops when told.
func TestScan(t *testing.T) {
	d := openTest(t)
	if err := d.Update(func(tx storage.Tx) error {
		for _, k := range []string{"a\x00\x02", "a\x00\x01", "ab", "b\x00\x01"} {
			tx.Put(col, k, []byte(k))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	d.View(func(tx storage.Tx) error {
		tx.Scan(col, "a\x00", func(k, _ []byte) bool { got = append(got, string(k)); return true })
		tx.Scan(col, "", func(k, _ []byte) bool { got = append(got, string(k)); return len(got) < 3 })
		return nil
	})
	want := []string{"a\x00\x01", "a\x00\x02", "a\x00\x01"}
	if len(got) != len(want) {
		t.Fatalf("scan %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("scan %q, want %q", got, want)
		}
	}
	if err := d.View(func(tx storage.Tx) error { tx.Put(col, "x", nil); return nil }); err == nil {
		t.Error("a write in View succeeded")
	}
}
