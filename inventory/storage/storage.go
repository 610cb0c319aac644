package storage

import (
	"errors"
	"io"
)

// Collection names a keyed set of records, like a table. The set of
// collections is fixed when an engine is opened.
type Collection string

// ErrLocked is returned by an engine's Open when another process holds
// the store.
var ErrLocked = errors.New("data dir in use")

// Engine keeps the inventory's records. All methods are safe for
// concurrent use.
type Engine interface {
	// View runs fn in a read-only snapshot. Writes inside it fail the
	// View.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits its writes
	// atomically. fn may run more than once (see the package doc); an
	// error from fn rolls its writes back and is returned. A write the
	// engine refuses (an empty key, a closed store) is returned as
	// Update's error even when fn returned nil.
	Update(fn func(Tx) error) error
	// Snapshot writes a consistent copy of the whole store to w, in the
	// engine's own file format, and returns its size.
	Snapshot(w io.Writer) (int64, error)
	Close() error
}

// Tx is one transaction. It is not safe for concurrent use, and nothing
// it returns outlives it: byte slices from Get and Scan are valid only
// until the transaction function returns (copy what you keep).
type Tx interface {
	// Get returns the record under key, or nil when there is none.
	Get(c Collection, key string) []byte
	// Put stores value under key, replacing any record there.
	Put(c Collection, key string, value []byte)
	// Delete removes the record under key; a missing one is no error.
	Delete(c Collection, key string)
	// Scan calls fn for every record whose key starts with prefix ("":
	// all), in byte order of the keys, until fn returns false. fn must
	// not write to c: collect keys and write after the scan.
	Scan(c Collection, prefix string, fn func(key, value []byte) bool)
	// OnCommit registers fn to run once the transaction has committed:
	// never for a transaction that rolled back or is being run again.
	// It is the change feed: the hooks of successive commits run in
	// commit order, each commit's before the next one's (an etcd engine
	// orders them by revision). fn runs outside the transaction and
	// must not block.
	OnCommit(fn func())
}
