package inventory

import (
	"encoding/binary"
	"encoding/json"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// A host's history has two classes of event, each kept to its newest
// MaxEventsPerHost:
//
//   - audit: what an operator, an installer holding a token, or a refusal
//     did to the host (created, imported, assign, takeover, booting,
//     user-data served or refused, the NoCloud seed, installed, failed,
//     reprovision, stage2-refused, serial-match, serial-mismatch);
//   - routine: what machines' protocol traffic records at its own rate
//     (dhcp, tftp, HTTP boot files, artifact downloads, stage-1 and
//     stage-2 requests, local boots) and any kind not listed as audit.
//
// A flood of routine events (a stranger repeating stage 2 for an
// installed host, forged DHCP DISCOVERs) so evicts only routine events:
// the record of who installed the host and who was refused survives it.
// A kind not listed below is routine, so that a new high-rate source can
// never push the audit trail out.

// eventClass is the class of an event, stored as the last byte of its
// key: mac + 0x00 + seq(8, per host) + class.
type eventClass byte

const (
	classRoutine eventClass = 'r'
	classAudit   eventClass = 'a'
)

// auditKinds are the kinds of the audit class.
var auditKinds = map[string]bool{
	"created": true, "imported": true, "reimported": true, "assign": true, "takeover": true,
	"booting": true, "userdata": true, "userdata-refused": true, "cidata": true,
	StateInstalled.String(): true, StateFailed.String(): true, "reprovision": true,
	"stage2-refused": true, "serial-match": true, "serial-mismatch": true,
}

// classOf is the class of an event of kind.
func classOf(kind string) eventClass {
	if auditKinds[kind] {
		return classAudit
	}
	return classRoutine
}

// keyClass is the class of the stored event k → v. Keys written before
// events had classes end at the sequence number; their kind decides.
func keyClass(k, v []byte, prefixLen int) eventClass {
	if len(k) == prefixLen+9 {
		return eventClass(k[prefixLen+8])
	}
	var e struct {
		Kind string `json:"kind"`
	}
	json.Unmarshal(v, &e)
	return classOf(e.Kind)
}

// repeats reports whether e is prev happening again.
func (prev *Event) repeats(e *Event) bool {
	return prev.Kind == e.Kind && prev.Attempt == e.Attempt && prev.Detail == e.Detail
}

// appendEvent stores e as mac's newest event and returns what was
// stored: when the newest event of its class is the same event, that
// one's Count and Last instead of a new record. Beyond MaxEventsPerHost
// events of its class, the oldest of that class go.
func appendEvent(tx storage.Tx, mac string, e Event) (Event, error) {
	prefix := seqPrefix(mac)
	class := classOf(e.Kind)
	var keys []string // of class, oldest first
	var newest []byte // the value of keys' last
	var last uint64
	tx.Scan(colEvents, prefix, func(k, v []byte) bool {
		if len(k) >= len(prefix)+8 {
			last = max(last, binary.BigEndian.Uint64(k[len(prefix):len(prefix)+8]))
		}
		if keyClass(k, v, len(prefix)) == class {
			keys, newest = append(keys, string(k)), v
		}
		return true
	})
	var prev Event
	if newest != nil && json.Unmarshal(newest, &prev) == nil && prev.repeats(&e) {
		prev.Count = max(prev.Count, 1) + 1
		prev.Last = e.Time
		raw, err := jsonOf(prev)
		if err != nil {
			return e, err
		}
		tx.Put(colEvents, keys[len(keys)-1], raw)
		return prev, nil
	}
	raw, err := jsonOf(e)
	if err != nil {
		return e, err
	}
	key := binary.BigEndian.AppendUint64([]byte(prefix), last+1)
	tx.Put(colEvents, string(append(key, byte(class))), raw)
	for i := 0; i < len(keys)+1-MaxEventsPerHost; i++ {
		tx.Delete(colEvents, keys[i])
	}
	return e, nil
}
