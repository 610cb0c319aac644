package inventory

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Bounds on one event, as stored (escapes included): a detail holds an
// installer's failure message (MaxFailMessage) with room to spare.
const (
	MaxEventDetail = 2 << 10
	maxEventKind   = 64
)

// seqPrefix is the key prefix of a host's sequenced records (events,
// retired tokens): mac + 0x00, then a big-endian sequence number, so a
// prefix scan reads them oldest first.
func seqPrefix(mac string) string { return mac + "\x00" }

// appendSeq stores value as the newest of mac's records in c and drops
// the oldest beyond keep (keep <= 0: none). The sequence is per host: one more than the
// newest key (databases written with one counter per bucket keep their
// keys, and go on from the highest).
func appendSeq(tx storage.Tx, c storage.Collection, mac string, value []byte, keep int) {
	prefix := seqPrefix(mac)
	var keys []string
	var last uint64
	tx.Scan(c, prefix, func(k, _ []byte) bool {
		keys = append(keys, string(k))
		if len(k) == len(prefix)+8 {
			last = binary.BigEndian.Uint64(k[len(prefix):])
		}
		return true
	})
	tx.Put(c, string(binary.BigEndian.AppendUint64([]byte(prefix), last+1)), value)
	for i := 0; keep > 0 && i < len(keys)+1-keep && i < len(keys); i++ {
		tx.Delete(c, keys[i])
	}
}

// deleteSeq drops mac's records in c but the newest keep (keep < 0: all),
// returning the values it dropped.
func deleteSeq(tx storage.Tx, c storage.Collection, mac string, keep int) [][]byte {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	tx.Scan(c, seqPrefix(mac), func(k, v []byte) bool {
		all = append(all, kv{string(k), append([]byte(nil), v...)})
		return true
	})
	drop := len(all) - keep
	if keep < 0 {
		drop = len(all)
	}
	var out [][]byte
	for i := 0; i < drop; i++ {
		tx.Delete(c, all[i].k)
		out = append(out, all[i].v)
	}
	return out
}

// addEvent records e on the host mac and queues it for the event feed
// (Options.OnEvents) once this transaction commits. Every event passes
// here, and its details are often a client's text (a TFTP filename, a
// reported serial, an installer's message): they are kept escaped and
// bounded (safetext.Clean).
func (w *wtx) addEvent(mac string, e Event) error {
	e.Kind, e.Detail = safetext.Clean(e.Kind, maxEventKind), safetext.Clean(e.Detail, MaxEventDetail)
	e, err := appendEvent(w, mac, e)
	if err != nil {
		return err
	}
	w.events = append(w.events, StoredEvent{MAC: mac, Event: e})
	return nil
}

// AddEvent records an event on a known host. Unknown MACs are refused
// with ErrNotFound, read-only, so that a flood of strangers cannot grow
// the file nor join a write. Another NIC's MAC records on its host.
func (s *Store) AddEvent(mac, kind, detail string) error {
	_, err := s.addEvents([]HostEvent{{MAC: mac, Kind: kind, Detail: detail}}, true)
	return err
}

// HostEvent is one event for the host with MAC, for AddEvents. Time is
// when it happened (zero: when it is committed); a recorder that
// batches commits keeps it, so the boot timeline's steps are not moved
// by a commit's wait.
type HostEvent struct {
	MAC, Kind, Detail string
	Time              time.Time
}

// AddEvents records many hosts' events at once: one read transaction
// sorts out the MACs in the inventory, one write transaction (which the
// engine may share with concurrent writers) records their events.
// Events for MACs not in the inventory, or not valid MACs, are skipped,
// so a flood of strangers costs one read, not a write each. It returns
// how many events were recorded.
//
// DHCP replies come in bursts of thousands a second when a rack powers
// on; recording each with a transaction of its own would cost an fsync
// per reply.
func (s *Store) AddEvents(evs []HostEvent) (int, error) { return s.addEvents(evs, false) }

// addEvents is AddEvents; strict makes a batch with no known host
// ErrNotFound (or the MAC's syntax error) rather than zero events.
func (s *Store) addEvents(evs []HostEvent, strict bool) (int, error) {
	var known []HostEvent
	sort := func(tx storage.Tx) error {
		known = known[:0]
		var miss error
		for _, e := range evs {
			mac, err := NormalizeMAC(e.MAC)
			if err != nil {
				miss = err
				continue
			}
			if mac = resolve(tx, mac); mac == "" {
				miss = fmt.Errorf("%w: host %s", ErrNotFound, e.MAC)
				continue
			}
			e.MAC = mac
			known = append(known, e)
		}
		if len(known) == 0 {
			if strict && miss != nil {
				return miss
			}
			return errNothing
		}
		return nil
	}
	n := 0
	err := s.guarded(sort, func(w *wtx) (error, error) {
		n = 0
		now := s.now().UTC()
		for _, e := range known {
			h, err := get[Host](w, colHosts, e.MAC, "host")
			if err != nil {
				continue // deleted since the check
			}
			at := now
			if !e.Time.IsZero() && e.Time.Before(now) {
				at = e.Time.UTC()
			}
			if err := w.addEvent(e.MAC, Event{Time: at, Kind: e.Kind, Attempt: h.Attempt, Detail: e.Detail}); err != nil {
				return nil, err
			}
			n++
		}
		return nil, nil
	})
	if err == errNothing {
		return 0, nil
	}
	return n, err
}

// errNothing is AddEvents' refusal of a batch with no known host.
var errNothing = fmt.Errorf("%w: no event for a known host", ErrNotFound)

// Events returns a host's events, oldest first.
func (s *Store) Events(mac string) ([]Event, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	var out []Event
	err = s.eng.View(func(tx storage.Tx) error {
		if tx.Get(colHosts, mac) == nil {
			return fmt.Errorf("%w: host %s", ErrNotFound, mac)
		}
		return scan(tx, colEvents, seqPrefix(mac), "event of "+mac, func(e Event) { out = append(out, e) })
	})
	return out, err
}
