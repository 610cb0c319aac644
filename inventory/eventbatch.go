package inventory

import (
	bolt "go.etcd.io/bbolt"
)

// HostEvent is one event for the host with MAC, for AddEvents.
type HostEvent struct {
	MAC, Kind, Detail string
}

// AddEvents records many hosts' events at once: one read transaction
// sorts out the MACs in the inventory, one write transaction (shared with
// concurrent writers through db.Batch) records their events. Events for
// MACs not in the inventory, or not valid MACs, are skipped, so a flood of
// strangers costs one read, not a write each. It returns how many events
// were recorded.
//
// DHCP replies come in bursts of thousands a second when a rack powers on;
// recording each with AddEvent cost a transaction per reply.
func (s *Store) AddEvents(evs []HostEvent) (int, error) {
	known := make([]HostEvent, 0, len(evs))
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, e := range evs {
			mac, err := NormalizeMAC(e.MAC)
			if err != nil {
				continue
			}
			// Another NIC of a host records on that host.
			if mac = resolve(tx, mac); mac == "" {
				continue
			}
			e.MAC = mac
			known = append(known, e)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if len(known) == 0 {
		return 0, nil
	}
	n := 0
	err := s.db.Batch(func(tx *bolt.Tx) error {
		n = 0 // bbolt may run the function again
		hosts := tx.Bucket(bucketHosts)
		now := s.now().UTC()
		for _, e := range known {
			h, err := get[Host](hosts, e.MAC, "host")
			if err != nil {
				continue // deleted since the check
			}
			if err := s.addEvent(tx, e.MAC, Event{Time: now, Kind: e.Kind, Attempt: h.Attempt, Detail: e.Detail}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
