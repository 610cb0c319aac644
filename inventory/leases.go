package inventory

import (
	"encoding/json"
	"sort"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Leases returns every stored DHCP lease.
func (s *Store) Leases() ([]Lease, error) {
	var out []Lease
	err := s.eng.View(func(tx storage.Tx) error {
		return scan(tx, colLeases, "", "lease", func(l Lease) { out = append(out, l) })
	})
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out, err
}

// PutLease stores a lease durably before returning. Concurrent callers
// share commits (the engine's group commit), so a burst of DHCP ACKs
// costs a few fsyncs, not one each.
func (s *Store) PutLease(l Lease) error {
	mac, err := NormalizeMAC(l.MAC)
	if err != nil {
		return err
	}
	l.MAC = mac
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) (error, error) {
		w.Put(colLeases, mac, raw)
		return nil, nil
	})
}

// DeleteLease forgets a lease; deleting a missing one is not an error.
func (s *Store) DeleteLease(mac string) error {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) (error, error) {
		w.Delete(colLeases, mac)
		return nil, nil
	})
}
