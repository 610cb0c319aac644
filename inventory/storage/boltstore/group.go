package boltstore

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// call is one Update waiting for its group's commit.
type call struct {
	fn   func(storage.Tx) error
	done chan error
}

// errPoisoned rolls a group back after a member wrote and then failed.
var errPoisoned = errors.New("a transaction function failed after writing")

// Update runs fn in a write transaction, group-committed with the
// Updates that arrive while another commit is in flight. One goroutine
// commits, and runs each commit's hooks before the next commit starts:
// the change feed sees commits in the order they happened.
func (d *DB) Update(fn func(storage.Tx) error) error {
	c := &call{fn: fn, done: make(chan error, 1)}
	d.mu.Lock()
	d.pending = append(d.pending, c)
	if len(d.pending) == maxGroup {
		select {
		case d.full <- struct{}{}:
		default:
		}
	}
	if !d.busy {
		d.busy = true
		go d.commitLoop()
	}
	d.mu.Unlock()
	return <-c.done
}

// updateSolo runs fn in a transaction of its own, on the committing
// goroutine.
func (d *DB) updateSolo(fn func(storage.Tx) error) error {
	var hooks []func()
	err := d.db.Update(func(btx *bolt.Tx) error {
		t := &tx{btx: btx}
		if err := fn(t); err != nil {
			return err
		}
		hooks = t.hooks
		return t.err
	})
	if err != nil {
		return err
	}
	d.commits.Add(1)
	for _, h := range hooks {
		h()
	}
	return nil
}

// commitLoop commits pending groups until none is left. A write that
// finds the store idle commits at once; under load (the last commit
// ended less than the window ago) the next group first gathers for
// what is left of the window, or until maxGroup calls wait. So a lone
// DHCP ACK waits for one fsync, and a rack powering on shares each
// fsync between many writes, as bbolt's Batch did, without Batch's
// fixed delay on every write.
func (d *DB) commitLoop() {
	for {
		d.gather()
		d.mu.Lock()
		calls := d.pending
		d.pending = nil
		if len(calls) == 0 {
			d.busy = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		d.commitGroup(calls)
		d.lastEnd.Store(time.Now().UnixNano())
	}
}

// gather waits out the rest of the window after the last commit, unless
// a full group is waiting.
func (d *DB) gather() {
	wait := d.window - time.Duration(time.Now().UnixNano()-d.lastEnd.Load())
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.full:
	}
}

// commitGroup commits calls in one transaction. A call that fails
// without having written is answered with its error and the group goes
// on; one that wrote and failed poisons the transaction: it is run alone
// for its own answer and the rest of the group runs again without it.
func (d *DB) commitGroup(calls []*call) {
	for len(calls) > 0 {
		results := make([]error, len(calls))
		hooks := make([][]func(), len(calls))
		poisoned := -1
		err := d.db.Update(func(btx *bolt.Tx) error {
			for i, c := range calls {
				t := &tx{btx: btx}
				err := c.fn(t)
				if err == nil {
					err = t.err
				}
				switch {
				case err == nil:
					results[i], hooks[i] = nil, t.hooks
				case t.wrote:
					poisoned = i
					return errPoisoned
				default:
					results[i] = err
				}
			}
			return nil
		})
		if poisoned >= 0 {
			calls[poisoned].done <- d.updateSolo(calls[poisoned].fn)
			calls = append(calls[:poisoned:poisoned], calls[poisoned+1:]...)
			continue
		}
		if err == nil {
			d.commits.Add(1)
		}
		for i, c := range calls {
			if err != nil {
				c.done <- err
				continue
			}
			for _, h := range hooks[i] {
				h()
			}
			c.done <- results[i]
		}
		return
	}
}
