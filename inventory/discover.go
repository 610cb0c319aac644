package inventory

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// ErrLimit is a refusal because a bound on what strangers may write is
// reached (the number of discovered records).
var ErrLimit = errors.New("limit reached")

// errKnown is Discover's read-only answer for a MAC already in the
// inventory: the host is returned unchanged.
var errKnown = errors.New("known host")

// Discover records an unknown host that PXE-booted, in state discovered,
// with what it reported, in one commit. A host already known (by its MAC
// or another NIC's) is returned unchanged. When limit > 0 and that many
// hosts are discovered already, nothing is written and the error is
// ErrLimit: anyone on the network can invent MACs, and each would be a
// record.
//
// When the serial it reports is a manifest serial of another host, both
// get a "serial-match" event: a machine with several NICs often PXE-boots
// from a port other than the one the manifest lists, and then shows up
// as a stranger while its own record waits in ready. The operator
// decides; nothing is moved or reassigned on a self-reported serial. The
// discovered record's event names the manifest host; the manifest host's
// does not name the discovered MAC, so that however many MACs report its
// serial it holds one such event, counted (Event.Count), and the
// discovered records' own events name it.
func (s *Store) Discover(mac, ip string, f Facts, limit int) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	if err := (&Host{MAC: mac}).validate(); err != nil {
		return Host{}, err
	}
	var h Host
	var matches []Host
	decide := func(tx storage.Tx) error {
		if key := resolve(tx, mac); key != "" {
			var err error
			if h, err = get[Host](tx, colHosts, key, "host"); err != nil {
				return err
			}
			return errKnown
		}
		var n int
		var err error
		if n, matches, err = discoveredAndSerial(tx, f.Serial); err != nil {
			return err
		}
		if limit > 0 && n >= limit {
			return fmt.Errorf("%w: host %s not recorded: %d hosts are discovered already, the most allowed (serve --discover-max)", ErrLimit, mac, n)
		}
		return nil
	}
	err = s.guarded(decide, func(w *wtx) (error, error) {
		now := s.now().UTC()
		h = Host{MAC: mac, CreatedAt: now, UpdatedAt: now, State: StateDiscovered, SelfReported: true}
		if err := w.createHost(&h, Event{Time: now, Kind: "created", Detail: "state " + h.State.String()}); err != nil {
			return nil, err
		}
		if err := w.seen(&h, ip, f); err != nil {
			return nil, err
		}
		if err := put(w, colHosts, mac, h); err != nil {
			return nil, err
		}
		return nil, w.noteSerialMatch(&h, f.Serial, matches)
	})
	if errors.Is(err, errKnown) {
		return h, nil
	}
	return h, err
}

// discoveredAndSerial counts the discovered hosts and finds the hosts
// whose manifest serial is serial (none for a blank serial): one read
// of the hosts.
func discoveredAndSerial(tx storage.Tx, serial string) (int, []Host, error) {
	serial = strings.TrimSpace(serial)
	n := 0
	var matches []Host
	err := scan(tx, colHosts, "", "host", func(o Host) {
		if o.State == StateDiscovered {
			n++
		}
		if serial != "" && o.Serial != "" && strings.EqualFold(o.Serial, serial) {
			matches = append(matches, o)
		}
	})
	return n, matches, err
}

// noteSerialMatch adds the serial-match events of Discover for the
// discovered host h and the manifest hosts matches.
func (w *wtx) noteSerialMatch(h *Host, serial string, matches []Host) error {
	now := w.s.now().UTC()
	for _, o := range matches {
		if err := w.addEvent(h.MAC, Event{Time: now, Kind: "serial-match",
			Detail: fmt.Sprintf("reports serial %q, the manifest serial of %s: is this that machine's other NIC?", serial, o.Ident())}); err != nil {
			return err
		}
		if err := w.addEvent(o.MAC, Event{Time: now, Kind: "serial-match", Attempt: o.Attempt,
			Detail: fmt.Sprintf("a discovered host reports this host's serial %q: the machine may be booting from another NIC (host list --state discovered; each one's serial-match event names this host)", o.Serial)}); err != nil {
			return err
		}
	}
	return nil
}

// onlyDiscovered reports whether h is no more than a record of its own
// PXE boot: made by discovery (SelfReported), still discovered, with no
// operator field set. Anyone on the network can make one for any MAC, so
// a manifest or host add of that MAC takes it over (see takeover). A
// host an operator made, even with its MAC alone, is never taken over:
// importing it again updates it.
func (h *Host) onlyDiscovered() bool {
	if !h.SelfReported || h.State != StateDiscovered {
		return false
	}
	for _, f := range Fields {
		if f.Name != "mac" && f.Get(h) != "" {
			return false
		}
	}
	return true
}

// takeover is the event of an operator's record replacing old, a
// discovered one: it names what old reported, which nothing keeps
// otherwise.
func takeover(old *Host, at Event) Event {
	d := fmt.Sprintf("replaces the discovered record created %s: last %s",
		old.CreatedAt.Format(time.RFC3339), old.Facts.Describe(old.LastIP))
	for _, kv := range [][2]string{{"uuid", old.Facts.UUID}, {"manufacturer", old.Facts.Manufacturer}, {"product", old.Facts.Product}, {"arch", old.LastArch}} {
		if kv[1] != "" {
			d += " " + kv[0] + " " + kv[1]
		}
	}
	at.Kind, at.Detail = "takeover", d
	return at
}

// forgetReported clears what a host reported about itself, for the
// record an operator makes in place of a discovered one.
func (h *Host) forgetReported() {
	h.LastIP, h.LastArch, h.Facts = "", "", Facts{}
	h.FirstBootAt, h.BootAt = timeZero, timeZero
}
