package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/inventory/storage/boltstore"
)

// MaxEventsPerHost caps each class of a host's history (see eventlog.go):
// a host keeps its newest MaxEventsPerHost audit events and as many
// routine ones; within a class the oldest go first.
const MaxEventsPerHost = 200

// Store is the inventory: the domain rules over a storage engine (see
// package storage). All methods are safe for concurrent use.
type Store struct {
	eng  storage.Engine
	path string
	log  zerolog.Logger
	now  func() time.Time
	// secret keys the derivation of install tokens (see tokens.go).
	secret []byte
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
	if o.Now == nil {
		o.Now = time.Now
	}
	path := filepath.Join(dir, DBFile)
	eng, err := boltstore.Open(path, boltstore.Options{Collections: collections, LockTimeout: o.LockTimeout})
	if err != nil {
		return nil, err
	}
	s := &Store{eng: eng, path: path, log: o.Log, now: o.Now, onEvents: o.OnEvents}
	if err := s.init(); err != nil {
		eng.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.eng.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// ---- profiles ----

// PutProfile creates or replaces a profile.
func (s *Store) PutProfile(p Profile) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return s.write(func(w *wtx) (error, error) {
		now := s.now().UTC()
		if old, err := get[Profile](w, colProfiles, p.Name, "profile"); err == nil {
			p.CreatedAt = old.CreatedAt
		} else {
			p.CreatedAt = now
		}
		p.UpdatedAt = now
		// Every host of the profile must still render with the new base:
		// a profile edit must not leave hosts the installer would reject.
		var bad []string
		err := scan(w, colHosts, "", "host", func(h Host) {
			if h.Profile != p.Name {
				return
			}
			if err := checkRenderWith(&h, &p); err != nil {
				bad = append(bad, err.Error())
			}
		})
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			more := ""
			if len(bad) > 5 {
				more = fmt.Sprintf(" (and %d more)", len(bad)-5)
				bad = bad[:5]
			}
			return fmt.Errorf("%w: profile %s: its hosts would not render: %s%s", ErrInvalid, p.Name, strings.Join(bad, "; "), more), nil
		}
		return nil, put(w, colProfiles, p.Name, p)
	})
}

// Profile returns one profile.
func (s *Store) Profile(name string) (Profile, error) {
	var p Profile
	err := s.eng.View(func(tx storage.Tx) error {
		var err error
		p, err = get[Profile](tx, colProfiles, name, "profile")
		return err
	})
	return p, err
}

// Profiles lists all profiles by name.
func (s *Store) Profiles() ([]Profile, error) {
	var out []Profile
	err := s.eng.View(func(tx storage.Tx) error {
		return scan(tx, colProfiles, "", "profile", func(p Profile) { out = append(out, p) })
	})
	return out, err
}

// DeleteProfile removes a profile no host uses.
func (s *Store) DeleteProfile(name string) error {
	return s.write(func(w *wtx) (error, error) {
		if w.Get(colProfiles, name) == nil {
			return fmt.Errorf("%w: profile %s", ErrNotFound, name), nil
		}
		var users []string
		if err := scan(w, colHosts, "", "host", func(h Host) {
			if h.Profile == name {
				users = append(users, h.MAC)
			}
		}); err != nil {
			return nil, err
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: profile %s is used by %d host(s), e.g. %s", ErrConflict, name, len(users), users[0]), nil
		}
		w.Delete(colProfiles, name)
		return nil, nil
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
	err = s.eng.View(func(tx storage.Tx) error {
		h, err = get[Host](tx, colHosts, mac, "host")
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
	err := s.eng.View(func(tx storage.Tx) error {
		return scan(tx, colHosts, "", "host", func(h Host) {
			if f.match(&h) {
				out = append(out, h)
			}
		})
	})
	return out, err
}

// CreateHost adds a new host in state ready (or discovered when it has
// no profile). Its MAC and name must be new; its profile must exist. A
// MAC that is only discovered (onlyDiscovered: no operator field was
// ever set on it) is new for this purpose: the host replaces that
// record, with a "takeover" event naming what it had reported.
func (s *Store) CreateHost(h Host) (Host, error) {
	mac, err := NormalizeMAC(h.MAC)
	if err != nil {
		return Host{}, err
	}
	h.MAC = mac
	if err := h.validate(); err != nil {
		return Host{}, err
	}
	in := h
	err = s.write(func(w *wtx) (error, error) {
		h = in // a repeated run starts over
		old, err := get[Host](w, colHosts, mac, "host")
		if err == nil && !old.onlyDiscovered() {
			return fmt.Errorf("%w: host %s", ErrExists, mac), nil
		}
		squatted := err == nil
		if err := checkRefs(w, &h); err != nil {
			return err, nil
		}
		if err := checkRender(w, &h); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err), nil
		}
		now := s.now().UTC()
		h.CreatedAt, h.UpdatedAt = now, now
		h.State = initialState(&h)
		h.TokenHash, h.TokenNonce, h.ScriptIP = "", "", ""
		created := Event{Time: now, Kind: "created", Detail: "state " + h.State.String()}
		if err := w.createHost(&h, created); err != nil || !squatted {
			return nil, err
		}
		return nil, w.addEvent(mac, takeover(&old, created))
	})
	return h, err
}

// initialState is where a new host starts: ready with a profile (the
// assign transition taken at once), discovered without one.
func initialState(h *Host) State {
	if h.Profile == "" {
		return StateDiscovered
	}
	st, _ := Transition(StateDiscovered, TriggerAssign)
	return st
}

// createHost stores a new host and its first event.
func (w *wtx) createHost(h *Host, e Event) error {
	if err := w.saveHost(h, nil); err != nil {
		return err
	}
	return w.addEvent(h.MAC, e)
}

// UpdateHost applies fn to the stored host and saves it, in one
// transaction. fn may change the operator-owned fields (name, serial,
// profile, site, userdata); state and token changes go through the
// flow methods, and are restored if fn touches them. An error from fn
// is returned and nothing changes; fn may run more than once.
func (s *Store) UpdateHost(mac string, fn func(*Host) error) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.write(func(w *wtx) (error, error) {
		old, err := get[Host](w, colHosts, mac, "host")
		if err != nil {
			return refusedOr(err)
		}
		h = old
		h.OtherMACs = slices.Clone(old.OtherMACs)
		if err := fn(&h); err != nil {
			return err, nil
		}
		h.MAC, h.State, h.Attempt, h.TokenHash, h.TokenNonce, h.ScriptIP, h.CreatedAt = old.MAC, old.State, old.Attempt, old.TokenHash, old.TokenNonce, old.ScriptIP, old.CreatedAt
		// No transition leads back to discovered: a ready host without a
		// profile would start an attempt on its next boot that cannot be served.
		if h.Profile == "" && old.State != StateDiscovered {
			return fmt.Errorf("%w: host %s: field profile: cannot be cleared in state %s (assign another profile, or delete the host)", ErrInvalid, h.Ident(), old.State), nil
		}
		if err := h.validate(); err != nil {
			return err, nil
		}
		if err := checkRefs(w, &h); err != nil {
			return err, nil
		}
		if err := checkRender(w, &h); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err), nil
		}
		h.UpdatedAt = s.now().UTC()
		if err := w.assign(&h); err != nil {
			return nil, err
		}
		return nil, w.saveHost(&h, &old)
	})
	return h, err
}

// assign moves a discovered host that has been given a profile to ready
// (TriggerAssign) and records it, for every write that can give one.
func (w *wtx) assign(h *Host) error {
	if h.State != StateDiscovered || h.Profile == "" {
		return nil
	}
	next, err := Transition(h.State, TriggerAssign)
	if err != nil {
		return err
	}
	h.State = next
	return w.addEvent(h.MAC, Event{Time: h.UpdatedAt, Kind: "assign", Attempt: h.Attempt, Detail: "profile " + h.Profile})
}

// refusedOr sorts a lookup's error: a missing record is the request's
// refusal, anything else (a record that does not decode) the store's.
func refusedOr(err error) (error, error) {
	if isErr(err, ErrNotFound) {
		return err, nil
	}
	return nil, err
}

// DeleteHost removes a host, its events, tokens (live and retired: they
// answer 404 afterwards) and lease. mac must be the host's own MAC: the
// MAC of another host's other NIC is refused, naming that host.
func (s *Store) DeleteHost(mac string) error {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) (error, error) {
		h, err := get[Host](w, colHosts, mac, "host")
		if isErr(err, ErrNotFound) {
			if owner := idxOtherMAC.Owner(w, mac); owner != "" {
				return fmt.Errorf("%w: %s is another NIC of host %s, not a host: delete that host by its own MAC, or drop the NIC from its otherMACs", ErrConflict, mac, ident(w, owner)), nil
			}
		}
		if err != nil {
			return refusedOr(err)
		}
		idxNames.Release(w, h.Name, mac)
		idxDHCP.Release(w, h.DHCPAddress, mac)
		idxSiteIP.Release(w, siteIP(&h), mac)
		for _, m := range h.OtherMACs {
			idxOtherMAC.Release(w, m, mac)
		}
		deleteTokens(w, &h)
		w.Delete(colLeases, mac)
		deleteSeq(w, colEvents, mac, -1)
		w.Delete(colHosts, mac)
		return nil, nil
	})
}

// siteIP is the host's static site address, its key in idxSiteIP ("" for
// none).
func siteIP(h *Host) string {
	if h.Site.Network == nil {
		return ""
	}
	return strings.TrimSpace(h.Site.Network.IPAddress)
}

// checkRefs enforces the profile reference and the uniqueness of names,
// reserved addresses, static site addresses and MACs (a host's own and
// its other NICs'). Its errors are refusals.
func checkRefs(tx storage.Tx, h *Host) error {
	if h.Profile != "" && tx.Get(colProfiles, h.Profile) == nil {
		return fmt.Errorf("%w: host %s: field profile: no profile named %q", ErrInvalid, h.Ident(), h.Profile)
	}
	if other := idxNames.Taken(tx, h.Name, h.MAC); h.Name != "" && other != "" {
		return fmt.Errorf("%w: host %s: field name: %q is already used by %s", ErrExists, h.MAC, h.Name, ident(tx, other))
	}
	if other := idxDHCP.Taken(tx, h.DHCPAddress, h.MAC); h.DHCPAddress != "" && other != "" {
		return fmt.Errorf("%w: host %s: field dhcpAddress: %s is already reserved for host %s", ErrExists, h.Ident(), h.DHCPAddress, ident(tx, other))
	}
	if ip := siteIP(h); ip != "" {
		if other := idxSiteIP.Taken(tx, ip, h.MAC); other != "" {
			return fmt.Errorf("%w: host %s: field ipAddress: %s is already the static address of host %s", ErrExists, h.Ident(), ip, ident(tx, other))
		}
	}
	if owner := idxOtherMAC.Taken(tx, h.MAC, h.MAC); owner != "" {
		return fmt.Errorf("%w: host %s: field mac: %s is listed as another NIC of host %s", ErrExists, h.Ident(), h.MAC, ident(tx, owner))
	}
	for _, m := range h.OtherMACs {
		if tx.Get(colHosts, m) != nil {
			return fmt.Errorf("%w: host %s: field otherMACs: %s is the MAC of host %s", ErrExists, h.Ident(), m, ident(tx, m))
		}
		if other := idxOtherMAC.Taken(tx, m, h.MAC); other != "" {
			return fmt.Errorf("%w: host %s: field otherMACs: %s is already another NIC of host %s", ErrExists, h.Ident(), m, ident(tx, other))
		}
	}
	return nil
}

// ident names the stored host mac as Host.Ident does.
func ident(tx storage.Tx, mac string) string {
	if h, err := get[Host](tx, colHosts, mac, "host"); err == nil {
		return h.Ident()
	}
	return mac
}

// saveHost stores h and moves its index entries from old's (nil: a new
// host). An entry another host took over in the same transaction (an
// import that swaps two names) is left to that host.
func (w *wtx) saveHost(h, old *Host) error {
	if old == nil {
		old = &Host{}
		if o, err := get[Host](w, colHosts, h.MAC, "host"); err == nil {
			old = &o
		}
	}
	idxNames.Move(w, h.MAC, []string{old.Name}, []string{h.Name})
	idxDHCP.Move(w, h.MAC, []string{old.DHCPAddress}, []string{h.DHCPAddress})
	idxSiteIP.Move(w, h.MAC, []string{siteIP(old)}, []string{siteIP(h)})
	idxOtherMAC.Move(w, h.MAC, old.OtherMACs, h.OtherMACs)
	return put(w, colHosts, h.MAC, h)
}

// Resolve returns the MAC a host is keyed by for mac, in any accepted
// spelling: mac itself when it is a host's, the host's when it is one of
// that host's OtherMACs, else ErrNotFound. One read of two small
// collections, cheap enough per DHCP packet.
func (s *Store) Resolve(mac string) (string, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	var key string
	err = s.eng.View(func(tx storage.Tx) error {
		if key = resolve(tx, mac); key == "" {
			return fmt.Errorf("%w: host %s", ErrNotFound, mac)
		}
		return nil
	})
	return key, err
}

// resolve is Resolve inside tx for a normalized mac; "" when unknown.
func resolve(tx storage.Tx, mac string) string {
	if tx.Get(colHosts, mac) != nil {
		return mac
	}
	return idxOtherMAC.Owner(tx, mac)
}

// ReservedFor returns the MAC of the host the DHCP address ip is
// reserved for (Host.DHCPAddress), or ErrNotFound. It is one read of a
// small index, cheap enough for the DHCP server to ask per packet.
func (s *Store) ReservedFor(ip string) (string, error) {
	var mac string
	err := s.eng.View(func(tx storage.Tx) error {
		if mac = idxDHCP.Owner(tx, ip); mac == "" {
			return fmt.Errorf("%w: dhcp address %s", ErrNotFound, ip)
		}
		return nil
	})
	return mac, err
}
