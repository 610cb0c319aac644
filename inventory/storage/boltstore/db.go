package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Options tune Open.
type Options struct {
	// Collections are created if missing. Every collection the store
	// uses must be listed.
	Collections []storage.Collection
	// LockTimeout is how long to wait for another process to release
	// the file; 0 means 1s. A second server on the same file must fail
	// fast rather than hang.
	LockTimeout time.Duration
	// Window is how long, under load, a group of writes gathers before
	// it commits (see commitLoop); 0 means DefaultWindow, < 0 none.
	Window time.Duration
}

// DefaultWindow bounds the commit rate under load at 500 commits a
// second, each an fdatasync: without it a rack powering on made one
// commit per write (7.5 per host, 6 times the fsyncs of bbolt's Batch,
// docs/bench/rack.md), and the server spent its core syncing. 5 ms
// bought the rack nothing more and doubled the median full-mode DHCP
// ACK delay (13 ms against 8 ms at 4 500 DORA/s).
const DefaultWindow = 2 * time.Millisecond

// maxGroup calls commit at once without waiting out the window.
const maxGroup = 1000

// DB is a storage.Engine on a bbolt file.
type DB struct {
	db *bolt.DB
	// commits counts committed write transactions, for tests that show
	// writes share commits.
	commits atomic.Uint64

	mu      sync.Mutex
	pending []*call
	busy    bool
	window  time.Duration
	full    chan struct{} // a group reached maxGroup: stop gathering
	lastEnd atomic.Int64  // unix nanoseconds the last commit ended
}

var _ storage.Engine = (*DB)(nil)

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, o Options) (*DB, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	// bbolt maps the file and trusts its header: a truncated database
	// (a full disk, a bad copy) would kill the process with SIGBUS
	// instead of failing. An empty file is a new database.
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		if err := checkLength(path); err != nil {
			return nil, fmt.Errorf("open %s: %w (restore a backup with stagehand restore)", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another stagehand process (stop it, or use another --data-dir)", storage.ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, c := range o.Collections {
			if _, err := tx.CreateBucketIfNotExists([]byte(c)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	return &DB{db: db, window: o.Window, full: make(chan struct{}, 1)}, nil
}

// Close closes the file. Updates after Close fail.
func (d *DB) Close() error { return d.db.Close() }

// Path is the file.
func (d *DB) Path() string { return d.db.Path() }

// Commits is how many write transactions have committed.
func (d *DB) Commits() uint64 { return d.commits.Load() }

// View runs fn in a read transaction.
func (d *DB) View(fn func(storage.Tx) error) error {
	return d.db.View(func(btx *bolt.Tx) error {
		t := &tx{btx: btx}
		if err := fn(t); err != nil {
			return err
		}
		return t.err
	})
}

// Snapshot writes the whole file as of one read transaction.
func (d *DB) Snapshot(w io.Writer) (int64, error) {
	var n int64
	err := d.db.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	return n, err
}

// tx adapts a bbolt transaction. The first failed write is kept in err
// and fails the transaction; wrote says whether fn changed anything.
type tx struct {
	btx   *bolt.Tx
	err   error
	wrote bool
	hooks []func()
}

func (t *tx) bucket(c storage.Collection) *bolt.Bucket {
	b := t.btx.Bucket([]byte(c))
	if b == nil && t.err == nil {
		t.err = fmt.Errorf("collection %s was not declared at Open", c)
	}
	return b
}

func (t *tx) Get(c storage.Collection, key string) []byte {
	if b := t.bucket(c); b != nil {
		return b.Get([]byte(key))
	}
	return nil
}

func (t *tx) Put(c storage.Collection, key string, value []byte) {
	t.wrote = true
	if b := t.bucket(c); b != nil {
		if err := b.Put([]byte(key), value); err != nil && t.err == nil {
			t.err = fmt.Errorf("put %s %q: %w", c, key, err)
		}
	}
}

func (t *tx) Delete(c storage.Collection, key string) {
	t.wrote = true
	if b := t.bucket(c); b != nil {
		if err := b.Delete([]byte(key)); err != nil && t.err == nil {
			t.err = fmt.Errorf("delete %s %q: %w", c, key, err)
		}
	}
}

func (t *tx) Scan(c storage.Collection, prefix string, fn func(key, value []byte) bool) {
	b := t.bucket(c)
	if b == nil {
		return
	}
	p := []byte(prefix)
	cur := b.Cursor()
	for k, v := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = cur.Next() {
		if !fn(k, v) {
			return
		}
	}
}

func (t *tx) OnCommit(fn func()) { t.hooks = append(t.hooks, fn) }
