package inventory

import (
	"encoding/json"
	"fmt"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// The collections, and so the bbolt buckets: names and JSON values are
// the on-disk format, unchanged by the split into domain and engine.
const (
	colHosts    storage.Collection = "hosts"    // mac → Host
	colProfiles storage.Collection = "profiles" // name → Profile
	colEvents   storage.Collection = "events"   // mac + 0x00 + seq(8, per host) + class (eventlog.go) → Event
	colLeases   storage.Collection = "leases"   // mac → Lease
	colTokens   storage.Collection = "tokens"   // sha256(token) hex → tokenRecord (live or retired)
	colRetired  storage.Collection = "retired"  // mac + 0x00 + seq(8, per host) → hash of a retired token, oldest first
	colMeta     storage.Collection = "meta"     // the inventory's own settings: the token secret, index versions
)

// Secondary indexes, each unique across hosts.
const (
	idxNames    storage.Unique = "names"     // host name → mac
	idxDHCP     storage.Unique = "dhcpaddrs" // reserved DHCP address → mac, for the DHCP server's lookups
	idxOtherMAC storage.Unique = "othermacs" // another NIC's MAC → the host's MAC (Host.OtherMACs)
	idxSiteIP   storage.Unique = "siteips"   // static site network ipAddress → mac
)

var collections = []storage.Collection{
	colHosts, colProfiles, colEvents, colLeases, colTokens, colRetired, colMeta,
	storage.Collection(idxNames), storage.Collection(idxDHCP), storage.Collection(idxOtherMAC), storage.Collection(idxSiteIP),
}

// get decodes the record under key; ErrNotFound names what is missing.
func get[T any](tx storage.Tx, c storage.Collection, key, what string) (T, error) {
	var v T
	raw := tx.Get(c, key)
	if raw == nil {
		return v, fmt.Errorf("%w: %s %s", ErrNotFound, what, key)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w", what, key, err)
	}
	return v, nil
}

// jsonOf encodes a record. Our types always encode; a failure is a
// programmer error, surfaced as the transaction's error.
func jsonOf(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return raw, nil
}

// put encodes v under key. Our types always encode; a failure is a
// programmer error, surfaced as the transaction's error.
func put(tx storage.Tx, c storage.Collection, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", c, key, err)
	}
	tx.Put(c, key, raw)
	return nil
}

// scan decodes every record of c under prefix, in key order.
func scan[T any](tx storage.Tx, c storage.Collection, prefix, what string, fn func(T)) error {
	var err error
	tx.Scan(c, prefix, func(k, v []byte) bool {
		var x T
		if e := json.Unmarshal(v, &x); e != nil {
			err = fmt.Errorf("decode %s %s: %w", what, k, e)
			return false
		}
		fn(x)
		return true
	})
	return err
}

// wtx is one run of a write transaction: the engine's Tx and the events
// recorded in it, published through Options.OnEvents once it commits.
// A run the engine repeats starts with a fresh wtx, so events of a run
// that did not commit are never published.
type wtx struct {
	storage.Tx
	s      *Store
	events []StoredEvent
}

// write runs fn in a write transaction. fn reports a request-level
// refusal (unknown host, wrong state, invalid input) as its first
// result, decided before it writes anything, and keeps its second for
// failures of the store: the engine may share the commit with other
// callers, and an error there would make every one of them run again.
// A refusal is write's error, and nothing is written or published but
// what fn chose to record about it (FetchUserData's audit event).
func (s *Store) write(fn func(w *wtx) (refused, err error)) error {
	var refused error
	err := s.eng.Update(func(tx storage.Tx) error {
		w := &wtx{Tx: tx, s: s}
		var err error
		if refused, err = fn(w); err != nil {
			return err
		}
		// A refusal that wrote (an audited one) committed its events too.
		if evs := w.events; len(evs) > 0 && s.onEvents != nil {
			tx.OnCommit(func() { s.onEvents(evs) })
		}
		return nil
	})
	if err != nil {
		return err
	}
	return refused
}

// guarded is write for the high-rate paths (installer callbacks, boot
// steps): decide answers the request read-only first, so a refused one
// (a wrong token, a stranger's MAC) never joins a write; inside the
// write, decide runs again against the committed state, then apply.
func (s *Store) guarded(decide func(tx storage.Tx) error, apply func(w *wtx) (refused, err error)) error {
	var refused error
	if err := s.eng.View(func(tx storage.Tx) error { refused = decide(tx); return nil }); err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return s.write(func(w *wtx) (error, error) {
		if r := decide(w); r != nil {
			return r, nil
		}
		return apply(w)
	})
}
