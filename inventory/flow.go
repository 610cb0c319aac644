package inventory

import (
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Seen records what a host reported about itself on its way to stage 2:
// its address and SMBIOS facts. It notes a serial that differs from the
// manifest as an event, because a swapped chassis is what that means.
func (s *Store) Seen(mac, ip string, f Facts) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.db.Batch(func(tx *bolt.Tx) error {
		h, err = get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err
		}
		if err := s.seen(tx, &h, ip, f); err != nil {
			return err
		}
		return put(tx.Bucket(bucketHosts), mac, h)
	})
	return h, err
}

// seen applies Seen to h inside tx; the caller stores h.
func (s *Store) seen(tx *bolt.Tx, h *Host, ip string, f Facts) error {
	now := s.now().UTC()
	h.LastIP, h.Facts, h.UpdatedAt = ip, f, now
	if f.BuildArch != "" || f.Platform != "" {
		h.LastArch = strings.Trim(f.BuildArch+"-"+f.Platform, "-")
	}
	detail := "ip " + ip
	if f.Serial != "" {
		detail += " serial " + f.Serial
	}
	if err := s.addEvent(tx, h.MAC, Event{Time: now, Kind: "script", Attempt: h.Attempt, Detail: "stage 2 requested, " + detail}); err != nil {
		return err
	}
	if h.Serial != "" && f.Serial != "" && !strings.EqualFold(h.Serial, f.Serial) {
		return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "serial-mismatch", Attempt: h.Attempt,
			Detail: fmt.Sprintf("inventory serial %q, host reports %q", h.Serial, f.Serial)})
	}
	return nil
}

// Discover records an unknown host that PXE-booted, in state discovered.
// A host already known is returned unchanged.
//
// When the serial it reports is a manifest serial of another host, both
// get a "serial-match" event: a machine with several NICs often PXE-boots
// from a port other than the one the manifest lists, and then shows up
// as a stranger while its own record waits in ready. The operator
// decides; nothing is moved or reassigned on a self-reported serial.
func (s *Store) Discover(mac, ip string, f Facts) (Host, error) {
	h, err := s.CreateHost(Host{MAC: mac, LastIP: ip, Facts: f})
	if err == nil || !isErr(err, ErrExists) {
		if err != nil {
			return h, err
		}
		if h, err = s.Seen(mac, ip, f); err != nil {
			return h, err
		}
		return h, s.noteSerialMatch(h, f.Serial)
	}
	return s.Host(mac)
}

// noteSerialMatch adds the serial-match events of Discover: one read of
// the hosts, once per discovered machine.
func (s *Store) noteSerialMatch(h Host, serial string) error {
	if strings.TrimSpace(serial) == "" {
		return nil
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		var matches []Host
		err := tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			var o Host
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode host %s: %w", k, err)
			}
			if o.MAC != h.MAC && o.Serial != "" && strings.EqualFold(o.Serial, serial) {
				matches = append(matches, o)
			}
			return nil
		})
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for _, o := range matches {
			if err := s.addEvent(tx, h.MAC, Event{Time: now, Kind: "serial-match",
				Detail: fmt.Sprintf("reports serial %q, the manifest serial of %s: is this that machine's other NIC?", serial, o.Ident())}); err != nil {
				return err
			}
			if err := s.addEvent(tx, o.MAC, Event{Time: now, Kind: "serial-match", Attempt: o.Attempt,
				Detail: fmt.Sprintf("discovered %s reports this host's serial %q: the machine may be booting from another NIC", h.MAC, serial)}); err != nil {
				return err
			}
		}
		return nil
	})
}

// BeginInstall moves a host to booting for the install script being
// served right now to ip, and returns the token for its user-data URL.
// A ready host starts a new attempt; a host already booting or
// installing (iPXE retried, the VM reset) keeps its attempt but gets a
// fresh token, and the previous one is retired: only the newest script
// is live. ip is recorded as the attempt's ScriptIP, the one address
// FetchUserData serves under BindToScriptIP ("" leaves it unbound).
func (s *Store) BeginInstall(mac, ip string) (Host, string, error) {
	return s.beginInstall(mac, ip, nil)
}

// BeginInstallSeen is Seen and BeginInstall in one commit: stage 2 of an
// installing host costs one disk sync instead of two, which is what a
// rack powering on waits for.
func (s *Store) BeginInstallSeen(mac, ip string, f Facts) (Host, string, error) {
	return s.beginInstall(mac, ip, &f)
}

func (s *Store) beginInstall(mac, ip string, facts *Facts) (Host, string, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, "", err
	}
	token := newToken()
	var h Host
	// Batch: concurrent hosts share one commit. The function may run
	// more than once; it starts from the stored host every time.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		h, err = get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err
		}
		if facts != nil {
			if err := s.seen(tx, &h, ip, *facts); err != nil {
				return err
			}
		}
		next, err := Transition(h.State, TriggerScript)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		if err := retireToken(tx, &h); err != nil {
			return err
		}
		now := s.now().UTC()
		to := ""
		if ip != "" {
			to = " to " + ip
		}
		detail := "install script served" + to + " (token rotated)"
		if h.State == StateReady {
			h.Attempt++
			h.InstalledAt = timeZero
			h.FailedMsg = ""
			detail = "install script served" + to + ", new attempt"
			if h.FirstBootAt.IsZero() {
				h.FirstBootAt = now
			}
		}
		if err := issueToken(tx, &h, token); err != nil {
			return err
		}
		h.State, h.ScriptIP, h.BootAt, h.UpdatedAt = next, ip, now, now
		if err := put(tx.Bucket(bucketHosts), mac, h); err != nil {
			return err
		}
		return s.addEvent(tx, mac, Event{Time: now, Kind: "booting", Attempt: h.Attempt, Detail: detail})
	})
	if err != nil {
		return Host{}, "", err
	}
	return h, token, nil
}

// FetchUserData is the installer at ip asking for its configuration: it
// moves the host to installing. render runs inside the transaction with
// the host and its profile; if it fails (the configuration does not
// validate), nothing changes and its error is returned.
//
// Only a live attempt's token works: ErrNotFound for a token never
// issued, ErrGone for one superseded or whose attempt is over
// (installed, failed). Under BindToScriptIP a request from another
// address than the attempt's ScriptIP is ErrForbidden: the host is
// returned (for the caller's log), nothing about it changes, and a
// "userdata-refused" event records the address that tried.
func (s *Store) FetchUserData(token, ip string, bind Binding, render func(Host, Profile) error) (Host, Profile, error) {
	var h Host
	var p Profile
	var refused error
	err := s.db.Batch(func(tx *bolt.Tx) error {
		refused = nil // Batch may run this more than once
		var err error
		h, err = byToken(tx, token)
		if err != nil {
			return err
		}
		next, err := Transition(h.State, TriggerUserData)
		if err != nil {
			return fmt.Errorf("%w: attempt %d of %s is over (host is %s)", ErrGone, h.Attempt, h.Ident(), h.State)
		}
		now := s.now().UTC()
		if bind == BindToScriptIP && h.ScriptIP != "" && !sameIP(ip, h.ScriptIP) {
			refused = fmt.Errorf("%w: user-data of attempt %d of %s requested from %s, but the attempt is bound to %s, which fetched its install script",
				ErrForbidden, h.Attempt, h.Ident(), ip, h.ScriptIP)
			// Committed on purpose: the refusal is the audit trail.
			return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "userdata-refused", Attempt: h.Attempt,
				Detail: "user-data refused to " + ip + ": the attempt is bound to " + h.ScriptIP})
		}
		p, err = get[Profile](tx.Bucket(bucketProfiles), h.Profile, "profile")
		if err != nil {
			return err
		}
		if err := render(h, p); err != nil {
			return err
		}
		first := h.State != next
		h.State, h.UpdatedAt = next, now
		if ip != "" {
			h.LastIP = ip
		}
		if err := put(tx.Bucket(bucketHosts), h.MAC, h); err != nil {
			return err
		}
		detail := "user-data served to " + ip
		if !first {
			detail = "user-data served again to " + ip
		}
		return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "userdata", Attempt: h.Attempt, Detail: detail})
	})
	if err == nil && refused != nil {
		return h, Profile{}, refused
	}
	return h, p, err
}

// Complete records the installer's success. It is idempotent: a repeated
// callback for an attempt already installed records nothing and returns
// the host with changed=false. A superseded token is ErrGone; a failed
// attempt cannot turn into a success (ErrConflict).
func (s *Store) Complete(token string) (h Host, changed bool, err error) {
	err = s.db.Batch(func(tx *bolt.Tx) error {
		changed = false // Batch may run this more than once
		h, err = byToken(tx, token)
		if err != nil {
			return err
		}
		if h.State == StateInstalled {
			return nil
		}
		next, err := Transition(h.State, TriggerDone)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		now := s.now().UTC()
		h.State, h.InstalledAt, h.UpdatedAt, changed = next, now, now, true
		if err := put(tx.Bucket(bucketHosts), h.MAC, h); err != nil {
			return err
		}
		return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "installed", Attempt: h.Attempt,
			Detail: "installer reported completion after " + now.Sub(h.BootAt).Round(1e9).String()})
	})
	return h, changed, err
}

// Fail records the installer's failure with its message, cut to
// MaxFailMessage bytes and stripped of control characters. A repeated
// failure keeps the first message (changed=false).
func (s *Store) Fail(token, msg string) (h Host, changed bool, err error) {
	msg = cleanFailMessage(msg)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		changed = false // Batch may run this more than once
		h, err = byToken(tx, token)
		if err != nil {
			return err
		}
		if h.State == StateFailed {
			return nil
		}
		next, err := Transition(h.State, TriggerFailed)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		now := s.now().UTC()
		h.State, h.FailedMsg, h.UpdatedAt, changed = next, msg, now, true
		if err := put(tx.Bucket(bucketHosts), h.MAC, h); err != nil {
			return err
		}
		return s.addEvent(tx, h.MAC, Event{Time: now, Kind: "failed", Attempt: h.Attempt, Detail: msg})
	})
	return h, changed, err
}

// Reprovision sends a host back to ready: its token is retired (an
// installer still holding it hears 410), and its next PXE boot starts a
// new attempt with a new one.
func (s *Store) Reprovision(mac string) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.db.Update(func(tx *bolt.Tx) error {
		h, err = get[Host](tx.Bucket(bucketHosts), mac, "host")
		if err != nil {
			return err
		}
		next, err := Transition(h.State, TriggerReprovision)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		if h.Profile == "" {
			return fmt.Errorf("%w: host %s has no profile", ErrConflict, h.Ident())
		}
		if err := retireToken(tx, &h); err != nil {
			return err
		}
		now := s.now().UTC()
		prev := h.State
		h.State, h.ScriptIP, h.UpdatedAt = next, "", now
		if err := put(tx.Bucket(bucketHosts), mac, h); err != nil {
			return err
		}
		return s.addEvent(tx, mac, Event{Time: now, Kind: "reprovision", Attempt: h.Attempt, Detail: "from " + prev.String()})
	})
	return h, err
}
