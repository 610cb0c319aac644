package inventory

import (
	"fmt"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// The boot flow's writes run at the rate machines boot. Each decides its
// refusals (unknown MAC or token, an attempt that is over, a state that
// does not allow the step) read-only first and again inside the write,
// and reports them through its result, never as the transaction's error:
// the engine shares commits between concurrent callers, and one
// caller's error would make the others' transactions run again.

// Seen records what a host reported about itself on its way to stage 2:
// its address and SMBIOS facts. It notes a serial that differs from the
// manifest as an event, because a swapped chassis is what that means.
//
// A host whose install is over (installed, failed) keeps the facts and
// address of the attempt that installed it: the report ships them, and
// anyone on the network can name its MAC. Seen then records one event
// with what was reported and changes nothing else.
func (s *Store) Seen(mac, ip string, f Facts) (Host, error) {
	mac, err := NormalizeMAC(mac)
	if err != nil {
		return Host{}, err
	}
	var h Host
	err = s.guarded(func(tx storage.Tx) error {
		var err error
		h, err = get[Host](tx, colHosts, mac, "host")
		return err
	}, func(w *wtx) (error, error) {
		if h.State.Finished() {
			return nil, w.addEvent(mac, Event{Time: s.now().UTC(), Kind: "script", Attempt: h.Attempt,
				Detail: "stage 2 requested, " + f.Describe(ip) + "; host is " + h.State.String() + ", facts kept"})
		}
		if err := w.seen(&h, ip, f); err != nil {
			return nil, err
		}
		return nil, put(w, colHosts, mac, h)
	})
	return h, err
}

// Describe says what a stage-2 request from ip reported, for its event.
func (f Facts) Describe(ip string) string {
	if f.Serial != "" {
		return "ip " + ip + " serial " + f.Serial
	}
	return "ip " + ip
}

// seen applies Seen to h inside w; the caller stores h.
func (w *wtx) seen(h *Host, ip string, f Facts) error {
	f = f.clean()
	now := w.s.now().UTC()
	h.LastIP, h.Facts, h.UpdatedAt = ip, f, now
	if f.BuildArch != "" || f.Platform != "" {
		h.LastArch = strings.Trim(f.BuildArch+"-"+f.Platform, "-")
	}
	if err := w.addEvent(h.MAC, Event{Time: now, Kind: "script", Attempt: h.Attempt, Detail: "stage 2 requested, " + f.Describe(ip)}); err != nil {
		return err
	}
	if h.Serial != "" && f.Serial != "" && !strings.EqualFold(h.Serial, f.Serial) {
		return w.addEvent(h.MAC, Event{Time: now, Kind: "serial-mismatch", Attempt: h.Attempt,
			Detail: fmt.Sprintf("inventory serial %q, host reports %q", h.Serial, f.Serial)})
	}
	return nil
}

// BeginInstall moves a host to booting for the install script being
// served right now to ip, and returns the token for its user-data URL.
// A ready host starts a new attempt with a new token. A host already
// booting or installing (iPXE retried, the VM reset, a second NoCloud
// seed) keeps its attempt and its token (see tokens.go for the rule).
// ip is recorded as the attempt's ScriptIP, the one address
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
	nonce := randomHex(16)
	var h Host
	var next State
	var token string
	err = s.guarded(func(tx storage.Tx) error {
		var err error
		if h, err = get[Host](tx, colHosts, mac, "host"); err != nil {
			return err
		}
		if next, err = Transition(h.State, TriggerScript); err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		return nil
	}, func(w *wtx) (error, error) {
		if facts != nil {
			if err := w.seen(&h, ip, *facts); err != nil {
				return nil, err
			}
		}
		now := s.now().UTC()
		to := ""
		if ip != "" {
			to = " to " + ip
		}
		detail := "install script served again" + to + " (same attempt, same token)"
		var ok bool
		if token, ok = s.liveToken(&h); !ok {
			if err := retireToken(w, &h); err != nil {
				return nil, err
			}
			detail = "install script served" + to + " (token rotated)"
			if h.State == StateReady {
				h.Attempt++
				h.InstalledAt = timeZero
				h.FailedMsg = ""
				detail = "install script served" + to + ", new attempt"
				if h.FirstBootAt.IsZero() {
					h.FirstBootAt = now
				}
			}
			var err error
			if token, err = s.issueToken(w, &h, nonce); err != nil {
				return nil, err
			}
		}
		h.State, h.ScriptIP, h.BootAt, h.UpdatedAt = next, ip, now, now
		if err := put(w, colHosts, mac, h); err != nil {
			return nil, err
		}
		return nil, w.addEvent(mac, Event{Time: now, Kind: "booting", Attempt: h.Attempt, Detail: detail})
	})
	if err != nil {
		return Host{}, "", err
	}
	return h, token, nil
}

// FetchUserData is the installer at ip asking for its configuration: it
// moves the host to installing. render runs inside the transaction with
// the host and its profile (and may run more than once); if it fails
// (the configuration does not validate), nothing changes and its error
// is returned.
//
// Only a live attempt's token works: ErrNotFound for a token never
// issued, ErrGone for one superseded or whose attempt is over
// (installed, failed), returned with the token's host. Under BindToScriptIP a request from another
// address than the attempt's ScriptIP is ErrForbidden: the host is
// returned (for the caller's log), nothing about it changes, and a
// "userdata-refused" event records the address that tried.
func (s *Store) FetchUserData(token, ip string, bind Binding, render func(Host, Profile) error) (Host, Profile, error) {
	var h Host
	var p Profile
	var next State
	err := s.guarded(func(tx storage.Tx) error {
		var err error
		if h, err = byToken(tx, token); err != nil {
			return err
		}
		if next, err = Transition(h.State, TriggerUserData); err != nil {
			return fmt.Errorf("%w: attempt %d of %s is over (host is %s)", ErrGone, h.Attempt, h.Ident(), h.State)
		}
		return nil
	}, func(w *wtx) (error, error) {
		now := s.now().UTC()
		if bind == BindToScriptIP && h.ScriptIP != "" && !sameIP(ip, h.ScriptIP) {
			// Committed on purpose: the refusal is the audit trail.
			return fmt.Errorf("%w: user-data of attempt %d of %s requested from %s, but the attempt is bound to %s, which fetched its install script",
					ErrForbidden, h.Attempt, h.Ident(), ip, h.ScriptIP),
				w.addEvent(h.MAC, Event{Time: now, Kind: "userdata-refused", Attempt: h.Attempt,
					Detail: "user-data refused to " + ip + ": the attempt is bound to " + h.ScriptIP})
		}
		var err error
		if p, err = get[Profile](w, colProfiles, h.Profile, "profile"); err != nil {
			return refusedOr(err)
		}
		if err := render(h, p); err != nil {
			return err, nil
		}
		detail := "user-data served to " + ip
		if h.State == next {
			detail = "user-data served again to " + ip
		}
		h.State, h.UpdatedAt = next, now
		if ip != "" {
			h.LastIP = ip
		}
		if err := put(w, colHosts, h.MAC, h); err != nil {
			return nil, err
		}
		return nil, w.addEvent(h.MAC, Event{Time: now, Kind: "userdata", Attempt: h.Attempt, Detail: detail})
	})
	if isErr(err, ErrForbidden) {
		return h, Profile{}, err
	}
	return h, p, err
}

// Complete records the installer's success. It is idempotent: a repeated
// callback for an attempt already installed records nothing and returns
// the host with changed=false. A superseded token is ErrGone; a failed
// attempt cannot turn into a success (ErrConflict).
func (s *Store) Complete(token string) (h Host, changed bool, err error) {
	return s.finish(token, TriggerDone, func(h *Host, now time.Time) string {
		h.InstalledAt = now
		return "installer reported completion after " + now.Sub(h.BootAt).Round(time.Second).String()
	})
}

// Fail records the installer's failure with its message, its controls
// escaped and cut to MaxFailMessage bytes (safetext.Clean): the
// installer's text is a client's, and an operator's terminal prints it.
// A repeated failure keeps the first message (changed=false).
func (s *Store) Fail(token, msg string) (h Host, changed bool, err error) {
	msg = safetext.Clean(msg, MaxFailMessage)
	return s.finish(token, TriggerFailed, func(h *Host, now time.Time) string {
		h.FailedMsg = msg
		return msg
	})
}

// finish ends the attempt holding token with trigger (done or failed):
// the host moves to the trigger's state, apply records the outcome on it
// and returns the detail of the event, whose kind is the new state. A
// host already in that state is the installer repeating itself: nothing
// is recorded and changed is false.
func (s *Store) finish(token string, trigger Trigger, apply func(h *Host, now time.Time) string) (h Host, changed bool, err error) {
	var next State
	err = s.guarded(func(tx storage.Tx) error {
		var err error
		if h, err = byToken(tx, token); err != nil {
			return err
		}
		if next, err = Transition(h.State, trigger); err != nil && h.State != stateAfter(trigger) {
			return fmt.Errorf("host %s: %w", h.Ident(), err)
		}
		return nil
	}, func(w *wtx) (error, error) {
		changed = false // a repeated run starts over
		if h.State == stateAfter(trigger) {
			return nil, nil
		}
		now := s.now().UTC()
		detail := apply(&h, now)
		h.State, h.UpdatedAt, changed = next, now, true
		if err := put(w, colHosts, h.MAC, h); err != nil {
			return nil, err
		}
		return nil, w.addEvent(h.MAC, Event{Time: now, Kind: next.String(), Attempt: h.Attempt, Detail: detail})
	})
	return h, changed, err
}

// stateAfter is where an installer's report leaves a live attempt.
func stateAfter(t Trigger) State {
	st, _ := Transition(StateInstalling, t)
	return st
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
	err = s.write(func(w *wtx) (error, error) {
		var err error
		if h, err = get[Host](w, colHosts, mac, "host"); err != nil {
			return refusedOr(err)
		}
		next, err := Transition(h.State, TriggerReprovision)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Ident(), err), nil
		}
		if h.Profile == "" {
			return fmt.Errorf("%w: host %s has no profile", ErrConflict, h.Ident()), nil
		}
		if err := retireToken(w, &h); err != nil {
			return nil, err
		}
		now := s.now().UTC()
		prev := h.State
		h.State, h.ScriptIP, h.UpdatedAt = next, "", now
		if err := put(w, colHosts, mac, h); err != nil {
			return nil, err
		}
		return nil, w.addEvent(mac, Event{Time: now, Kind: "reprovision", Attempt: h.Attempt, Detail: "from " + prev.String()})
	})
	return h, err
}
