package inventory

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketHosts    = []byte("hosts")     // mac → Host
	bucketProfiles = []byte("profiles")  // name → Profile
	bucketEvents   = []byte("events")    // mac + 0x00 + seq(8) → Event
	bucketLeases   = []byte("leases")    // mac → Lease
	bucketTokens   = []byte("tokens")    // sha256(token) hex → tokenRecord (live or retired)
	bucketRetired  = []byte("retired")   // mac + 0x00 + seq(8) → hash of a retired token, oldest first
	bucketNames    = []byte("names")     // host name → mac, for uniqueness
	bucketDHCP     = []byte("dhcpaddrs") // reserved DHCP address → mac, for uniqueness and the DHCP server's lookups
	bucketOtherMAC = []byte("othermacs") // a host's other NIC's MAC → the host's MAC (Host.OtherMACs)
)

// MaxEventsPerHost caps each host's history; the oldest events go first.
const MaxEventsPerHost = 200

// Store is the bbolt-backed inventory. All methods are safe for
// concurrent use.
type Store struct {
	db     *bolt.DB
	log    zerolog.Logger
	now    func() time.Time
	leases leaseWriter // group commit of PutLease/DeleteLease
	// onEvents is Options.OnEvents; nil publishes nothing.
	onEvents func([]StoredEvent)
}

// Options tune Open. The zero value is fine.
type Options struct {
	Log zerolog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
	// LockTimeout is how long to wait for another process to release the
	// file. Default 1s: a second server on the same data dir must fail
	// fast rather than hang.
	LockTimeout time.Duration
	// OnEvents, when set, is called after every commit that recorded
	// events, with those events, outside any transaction and never for
	// a transaction that rolled back. It is the store's event feed: the
	// live stream that subscribers (host events --follow, watch) hang
	// off. It must not block (hand off and return) and must not call
	// back into the store.
	OnEvents func([]StoredEvent)
}

// StoredEvent is a committed event and the MAC of the host it is on
// (the host's own MAC, even when it came from one of its other NICs).
type StoredEvent struct {
	MAC string `json:"mac"`
	Event
}

// DBFile is the database's name inside the data dir.
const DBFile = "stagehand.db"

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	path := filepath.Join(dir, DBFile)
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
		return nil, fmt.Errorf("%w: %s is held by another stagehand process (stop it, or use another --data-dir)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHosts, bucketProfiles, bucketEvents, bucketLeases, bucketTokens, bucketRetired, bucketNames, bucketDHCP, bucketOtherMAC} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db, log: o.Log, now: o.Now, onEvents: o.OnEvents}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

func get[T any](b *bolt.Bucket, key string, what string) (T, error) {
	var v T
	raw := b.Get([]byte(key))
	if raw == nil {
		return v, fmt.Errorf("%w: %s %s", ErrNotFound, what, key)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w", what, key, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// ---- profiles ----

// PutProfile creates or replaces a profile.
func (s *Store) PutProfile(p Profile) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProfiles)
		now := s.now().UTC()
		if old, err := get[Profile](b, p.Name, "profile"); err == nil {
			p.CreatedAt = old.CreatedAt
		} else {
			p.CreatedAt = now
		}
		p.UpdatedAt = now
		if err := put(b, p.Name, p); err != nil {
			return err
		}
		// Every host of the profile must still render with the new base:
		// a profile edit must not leave hosts the installer would reject.
		var bad []string
		err := tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			var h Host
			if err := json.Unmarshal(v, &h); err != nil || h.Profile != p.Name {
				return err
			}
			if err := s.checkRender(tx, &h); err != nil {
				bad = append(bad, err.Error())
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(bad) > 0 {
			more := ""
			if len(bad) > 5 {
				more = fmt.Sprintf(" (and %d more)", len(bad)-5)
				bad = bad[:5]
			}
			return fmt.Errorf("%w: profile %s: its hosts would not render: %s%s", ErrInvalid, p.Name, strings.Join(bad, "; "), more)
		}
		return nil
	})
}

// Profile returns one profile.
func (s *Store) Profile(name string) (Profile, error) {
	var p Profile
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		p, err = get[Profile](tx.Bucket(bucketProfiles), name, "profile")
		return err
	})
	return p, err
}

// Profiles lists all profiles by name.
func (s *Store) Profiles() ([]Profile, error) {
	var out []Profile
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			var p Profile
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("decode profile %s: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// DeleteProfile removes a profile no host uses.
func (s *Store) DeleteProfile(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProfiles)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("%w: profile %s", ErrNotFound, name)
		}
		var users []string
		tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			var h Host
			if json.Unmarshal(v, &h) == nil && h.Profile == name {
				users = append(users, h.MAC)
			}
			return nil
		})
		if len(users) > 0 {
			return fmt.Errorf("%w: profile %s is used by %d host(s), e.g. %s", ErrConflict, name, len(users), users[0])
		}
		return b.Delete([]byte(name))
	})
}

// ---- hosts ----

// Host returns one host by MAC (any accepted spelling).
func (s *Store) Host(mac string) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.db.View(func(tx *bolt.Tx) error {
		h, err = get[Host](tx.Bucket(bucketHosts), mac, "host")
		return err
	})
	return h, err
}

// Filter selects hosts in Hosts. Zero fields match everything.
type Filter struct {
	State   State
	Profile string
	// Tags must all be present on the host's site with these values.
	Tags map[string]string
}

// Empty reports whether f matches every host.
func (f Filter) Empty() bool { return f.State == 0 && f.Profile == "" && len(f.Tags) == 0 }

func (f Filter) match(h *Host) bool {
	if (f.State != 0 && h.State != f.State) || (f.Profile != "" && h.Profile != f.Profile) {
		return false
	}
	for k, v := range f.Tags {
		if got, ok := h.Site.Tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Hosts lists hosts matching f, ordered by MAC.
func (s *Store) Hosts(f Filter) ([]Host, error) {
	var out []Host
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			var h Host
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("decode host %s: %w", k, err)
			}
			if f.match(&h) {
				out = append(out, h)
			}
			return nil
		})
	})
	return out, err
}

// CreateHost adds a new host in state ready (or discovered when it has
// no profile). Its MAC and name must be new; its profile must exist.
func (s *Store) CreateHost(h Host) (Host, error) {
	mac, err := NormalizeMAC(h.MAC)
	if err != nil {
		return Host{}, err
	}
	h.MAC = mac
	if err := h.validate(); err != nil {
		return Host{}, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		hosts := tx.Bucket(bucketHosts)
		if hosts.Get([]byte(mac)) != nil {
			return fmt.Errorf("%w: host %s", ErrExists, mac)
		}
		if err := s.checkRefs(tx, &h, ""); err != nil {
			return err
		}
		if err := s.checkRender(tx, &h); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		now := s.now().UTC()
		h.CreatedAt, h.UpdatedAt = now, now
		h.State = StateReady
		if h.Profile == "" {
			h.State = StateDiscovered
		}
		h.TokenHash, h.ScriptIP = "", ""
		if err := s.saveHost(tx, &h, ""); err != nil {
			return err
		}
		return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "created", Detail: "state " + h.State.String()})
	})
	return h, err
}

// UpdateHost applies fn to the stored host and saves it, in one
// transaction. fn may change the operator-owned fields (name, serial,
// profile, site, userdata); state and token changes go through the
// flow methods, and are restored if fn touches them.
func (s *Store) UpdateHost(mac string, fn func(*Host) error) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.db.Update(func(tx *bolt.Tx) error {
		old, err := get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err
		}
		h = old
		if err := fn(&h); err != nil {
			return err
		}
		h.MAC, h.State, h.Attempt, h.TokenHash, h.ScriptIP, h.CreatedAt = old.MAC, old.State, old.Attempt, old.TokenHash, old.ScriptIP, old.CreatedAt
		// No transition leads back to discovered: a ready host without a
		// profile would start an attempt on its next boot that cannot be served.
		if h.Profile == "" && old.State != StateDiscovered {
			return fmt.Errorf("%w: host %s: field profile: cannot be cleared in state %s (assign another profile, or delete the host)", ErrInvalid, h.Ident(), old.State)
		}
		if err := h.validate(); err != nil {
			return err
		}
		if err := s.checkRefs(tx, &h, old.Name); err != nil {
			return err
		}
		if err := s.checkRender(tx, &h); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if h.State == StateDiscovered && h.Profile != "" {
			h.State, _ = Transition(h.State, TriggerAssign)
		}
		h.UpdatedAt = s.now().UTC()
		if err := s.saveHost(tx, &h, old.Name); err != nil {
			return err
		}
		if h.State != old.State {
			return s.addEvent(tx, mac, Event{Time: h.UpdatedAt, Kind: "assign", Detail: "profile " + h.Profile})
		}
		return nil
	})
	return h, err
}

// DeleteHost removes a host, its events, tokens (live and retired: they
// answer 404 afterwards) and lease.
func (s *Store) DeleteHost(mac string) error {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		h, err := get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err
		}
		if h.Name != "" {
			tx.Bucket(bucketNames).Delete([]byte(h.Name))
		}
		if h.DHCPAddress != "" && string(tx.Bucket(bucketDHCP).Get([]byte(h.DHCPAddress))) == mac {
			tx.Bucket(bucketDHCP).Delete([]byte(h.DHCPAddress))
		}
		others := tx.Bucket(bucketOtherMAC)
		for _, m := range h.OtherMACs {
			if string(others.Get([]byte(m))) == mac {
				others.Delete([]byte(m))
			}
		}
		if err := deleteTokens(tx, &h); err != nil {
			return err
		}
		tx.Bucket(bucketLeases).Delete([]byte(mac))
		if err := deleteEvents(tx, mac, -1); err != nil {
			return err
		}
		return tx.Bucket(bucketHosts).Delete([]byte(mac))
	})
}

// checkRefs enforces the profile reference and the uniqueness of names,
// reserved addresses and MACs (a host's own and its other NICs').
func (s *Store) checkRefs(tx *bolt.Tx, h *Host, oldName string) error {
	if h.Profile != "" && tx.Bucket(bucketProfiles).Get([]byte(h.Profile)) == nil {
		return fmt.Errorf("%w: host %s: field profile: no profile named %q", ErrInvalid, h.Ident(), h.Profile)
	}
	if h.Name != "" && h.Name != oldName {
		if other := tx.Bucket(bucketNames).Get([]byte(h.Name)); other != nil && string(other) != h.MAC {
			return fmt.Errorf("%w: host %s: field name: %q is already used by %s", ErrExists, h.MAC, h.Name, other)
		}
	}
	if h.DHCPAddress != "" {
		if other := tx.Bucket(bucketDHCP).Get([]byte(h.DHCPAddress)); other != nil && string(other) != h.MAC {
			return fmt.Errorf("%w: host %s: field dhcpAddress: %s is already reserved for host %s", ErrExists, h.Ident(), h.DHCPAddress, s.ident(tx, string(other)))
		}
	}
	if owner := tx.Bucket(bucketOtherMAC).Get([]byte(h.MAC)); owner != nil && string(owner) != h.MAC {
		return fmt.Errorf("%w: host %s: field mac: %s is listed as another NIC of host %s", ErrExists, h.Ident(), h.MAC, s.ident(tx, string(owner)))
	}
	for _, m := range h.OtherMACs {
		if tx.Bucket(bucketHosts).Get([]byte(m)) != nil {
			return fmt.Errorf("%w: host %s: field otherMACs: %s is the MAC of host %s", ErrExists, h.Ident(), m, s.ident(tx, m))
		}
		if other := tx.Bucket(bucketOtherMAC).Get([]byte(m)); other != nil && string(other) != h.MAC {
			return fmt.Errorf("%w: host %s: field otherMACs: %s is already another NIC of host %s", ErrExists, h.Ident(), m, s.ident(tx, string(other)))
		}
	}
	return nil
}

// ident names the stored host mac as Host.Ident does.
func (s *Store) ident(tx *bolt.Tx, mac string) string {
	if h, err := get[Host](tx.Bucket(bucketHosts), mac, "host"); err == nil {
		return h.Ident()
	}
	return mac
}

func (s *Store) saveHost(tx *bolt.Tx, h *Host, oldName string) error {
	names := tx.Bucket(bucketNames)
	if oldName != "" && oldName != h.Name {
		if err := names.Delete([]byte(oldName)); err != nil {
			return err
		}
	}
	if h.Name != "" {
		if err := names.Put([]byte(h.Name), []byte(h.MAC)); err != nil {
			return err
		}
	}
	// The reservation index: drop the host's previous address unless
	// another host took it over in the same transaction (an import that
	// swaps two reservations), then claim the new one.
	addrs := tx.Bucket(bucketDHCP)
	if old, err := get[Host](tx.Bucket(bucketHosts), h.MAC, "host"); err == nil && old.DHCPAddress != "" && old.DHCPAddress != h.DHCPAddress &&
		string(addrs.Get([]byte(old.DHCPAddress))) == h.MAC {
		if err := addrs.Delete([]byte(old.DHCPAddress)); err != nil {
			return err
		}
	}
	if h.DHCPAddress != "" {
		if err := addrs.Put([]byte(h.DHCPAddress), []byte(h.MAC)); err != nil {
			return err
		}
	}
	// The other-NIC index, the same way: drop what the host no longer
	// lists (unless another host took it over), then claim the new set.
	others := tx.Bucket(bucketOtherMAC)
	if old, err := get[Host](tx.Bucket(bucketHosts), h.MAC, "host"); err == nil {
		for _, m := range old.OtherMACs {
			if !slices.Contains(h.OtherMACs, m) && string(others.Get([]byte(m))) == h.MAC {
				if err := others.Delete([]byte(m)); err != nil {
					return err
				}
			}
		}
	}
	for _, m := range h.OtherMACs {
		if err := others.Put([]byte(m), []byte(h.MAC)); err != nil {
			return err
		}
	}
	return put(tx.Bucket(bucketHosts), h.MAC, h)
}

// Resolve returns the MAC a host is keyed by for mac, in any accepted
// spelling: mac itself when it is a host's, the host's when it is one of
// that host's OtherMACs, else ErrNotFound. One read of two small
// buckets, cheap enough per DHCP packet.
func (s *Store) Resolve(mac string) (string, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	var key string
	err = s.db.View(func(tx *bolt.Tx) error {
		key = resolve(tx, mac)
		if key == "" {
			return fmt.Errorf("%w: host %s", ErrNotFound, mac)
		}
		return nil
	})
	return key, err
}

// resolve is Resolve inside tx for a normalized mac; "" when unknown.
func resolve(tx *bolt.Tx, mac string) string {
	if tx.Bucket(bucketHosts).Get([]byte(mac)) != nil {
		return mac
	}
	return string(tx.Bucket(bucketOtherMAC).Get([]byte(mac)))
}

// ReservedFor returns the MAC of the host the DHCP address ip is
// reserved for (Host.DHCPAddress), or ErrNotFound. It is one read of a
// small index, cheap enough for the DHCP server to ask per packet.
func (s *Store) ReservedFor(ip string) (string, error) {
	var mac string
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDHCP).Get([]byte(ip)); v != nil {
			mac = string(v)
			return nil
		}
		return fmt.Errorf("%w: dhcp address %s", ErrNotFound, ip)
	})
	return mac, err
}

// ---- events ----

func eventPrefix(mac string) []byte { return append([]byte(mac), 0) }

// AddEvent records an event on a known host. Unknown MACs are ignored
// (returns ErrNotFound) so that a flood of strangers cannot grow the file.
// It uses db.Batch: many concurrent boot steps share one commit.
func (s *Store) AddEvent(mac, kind, detail string) error {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	// A read transaction first: strangers (DHCP from MACs not in the
	// inventory) are turned away without joining a write batch, where
	// their failure would make bbolt re-run the whole batch.
	if err := s.db.View(func(tx *bolt.Tx) error {
		// Another NIC of a host records on that host.
		key := resolve(tx, mac)
		if key == "" {
			return fmt.Errorf("%w: host %s", ErrNotFound, mac)
		}
		mac = key
		return nil
	}); err != nil {
		return err
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		h, err := get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err // deleted since the check
		}
		return s.addEvent(tx, mac, Event{Time: s.now().UTC(), Kind: kind, Attempt: h.Attempt, Detail: detail})
	})
}

func (s *Store) addEvent(tx *bolt.Tx, mac string, e Event) error {
	b := tx.Bucket(bucketEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(eventPrefix(mac), seq)
	if err := put(b, string(key), e); err != nil {
		return err
	}
	if s.onEvents != nil {
		tx.OnCommit(func() { s.onEvents([]StoredEvent{{MAC: mac, Event: e}}) })
	}
	return deleteEvents(tx, mac, MaxEventsPerHost)
}

// deleteEvents trims mac's events to the newest keep (keep < 0: all).
func deleteEvents(tx *bolt.Tx, mac string, keep int) error {
	c := tx.Bucket(bucketEvents).Cursor()
	prefix := eventPrefix(mac)
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	drop := n - keep
	if keep < 0 {
		drop = n
	}
	for k, _ := c.Seek(prefix); drop > 0 && k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
		drop--
	}
	return nil
}

// Events returns a host's events, oldest first.
func (s *Store) Events(mac string) ([]Event, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	var out []Event
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketHosts).Get([]byte(mac)) == nil {
			return fmt.Errorf("%w: host %s", ErrNotFound, mac)
		}
		c := tx.Bucket(bucketEvents).Cursor()
		prefix := eventPrefix(mac)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode event of %s: %w", mac, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ---- leases ----

// Leases returns every stored DHCP lease.
func (s *Store) Leases() ([]Lease, error) {
	var out []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("decode lease %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out, err
}

// PutLease stores a lease durably before returning. Concurrent callers
// share commits (see leaseWriter), so a burst of DHCP ACKs costs a few
// fsyncs, not one each.
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
	return s.leases.write(s.db, leaseOp{mac: []byte(mac), val: raw})
}

// DeleteLease forgets a lease; deleting a missing one is not an error.
func (s *Store) DeleteLease(mac string) error {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	return s.leases.write(s.db, leaseOp{mac: []byte(mac)})
}

// leaseWriter commits lease writes in groups: the writes that arrive while
// one commit is in flight all go into the next transaction (group commit),
// so N DHCP workers waiting for durable leases share one fsync. It is
// used instead of db.Batch for two reasons the DHCP benchmark showed
// (docs/bench/dhcp.md): Batch waits up to MaxBatchDelay (10 ms) before it
// commits, which with a bounded number of workers caps the ACK rate; and
// it shares its transaction with other Batch writers (events), so every
// failing event write (an unknown MAC) re-ran all the lease puts of its
// batch. The zero value is ready; a committing goroutine runs only while
// writes are pending.
type leaseWriter struct {
	mu      sync.Mutex
	pending []leaseOp
	busy    bool
}

type leaseOp struct {
	mac, val []byte // val nil: delete
	done     chan error
}

func (w *leaseWriter) write(db *bolt.DB, op leaseOp) error {
	op.done = make(chan error, 1)
	w.mu.Lock()
	w.pending = append(w.pending, op)
	if !w.busy {
		w.busy = true
		go w.commit(db)
	}
	w.mu.Unlock()
	return <-op.done
}

// commit writes pending groups until none is left.
func (w *leaseWriter) commit(db *bolt.DB) {
	for {
		w.mu.Lock()
		ops := w.pending
		w.pending = nil
		if len(ops) == 0 {
			w.busy = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		err := db.Update(func(tx *bolt.Tx) error { return applyLeaseOps(tx, ops) })
		if err != nil && len(ops) > 1 {
			// One bad write must not fail the others: retry each alone.
			for _, op := range ops {
				op.done <- db.Update(func(tx *bolt.Tx) error { return applyLeaseOps(tx, []leaseOp{op}) })
			}
			continue
		}
		for _, op := range ops {
			op.done <- err
		}
	}
}

// applyLeaseOps applies ops in arrival order, so a put and a delete of
// one MAC in one group end as the client last asked.
func applyLeaseOps(tx *bolt.Tx, ops []leaseOp) error {
	b := tx.Bucket(bucketLeases)
	for _, op := range ops {
		var err error
		if op.val == nil {
			err = b.Delete(op.mac)
		} else {
			err = b.Put(op.mac, op.val)
		}
		if err != nil {
			return fmt.Errorf("lease %s: %w", op.mac, err)
		}
	}
	return nil
}
