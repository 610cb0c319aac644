package inventory

import (
	"encoding/json"
	"fmt"
	"strings"
)

// State is where a host is in its provisioning life.
type State int

const (
	StateDiscovered State = iota + 1 // seen on the wire, no profile yet: boots nothing
	StateReady                       // has a profile; the next PXE boot installs
	StateBooting                     // stage-2 install script served; kernel and initrd on their way
	StateInstalling                  // the installer fetched its user-data
	StateInstalled                   // the installer reported completion; boots local disk forever
	StateFailed                      // the installer reported failure; boots local disk until reprovisioned
)

var stateNames = [...]string{
	StateDiscovered: "discovered",
	StateReady:      "ready",
	StateBooting:    "booting",
	StateInstalling: "installing",
	StateInstalled:  "installed",
	StateFailed:     "failed",
}

func (s State) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// States returns every state in lifecycle order, the one list that
// metrics, the API, the CLI and tests iterate. The slice is the caller's.
func States() []State {
	out := make([]State, 0, len(stateNames)-1)
	for i, n := range stateNames {
		if n != "" {
			out = append(out, State(i))
		}
	}
	return out
}

// ParseState is the inverse of String.
func ParseState(v string) (State, error) {
	for _, s := range States() {
		if s.String() == v {
			return s, nil
		}
	}
	names := make([]string, 0, len(stateNames))
	for _, s := range States() {
		names = append(names, s.String())
	}
	return 0, fmt.Errorf("unknown state %q (want one of %s)", v, strings.Join(names, ", "))
}

func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s *State) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p, err := ParseState(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Live reports whether an install attempt is under way, the only time
// its token may fetch user-data or report back.
func (s State) Live() bool { return s == StateBooting || s == StateInstalling }

// Finished reports whether the host's install is over (installed or
// failed): what it reports about itself no longer changes its record.
func (s State) Finished() bool { return s == StateInstalled || s == StateFailed }

// Trigger is what happened to a host.
type Trigger int

const (
	TriggerAssign      Trigger = iota + 1 // operator gave a discovered host a profile
	TriggerScript                         // stage-2 install script served
	TriggerUserData                       // installer fetched user-data
	TriggerDone                           // installer reported success
	TriggerFailed                         // installer reported failure
	TriggerReprovision                    // operator asked for a fresh install
)

var triggerNames = [...]string{
	TriggerAssign:      "assign",
	TriggerScript:      "script",
	TriggerUserData:    "userdata",
	TriggerDone:        "done",
	TriggerFailed:      "failed",
	TriggerReprovision: "reprovision",
}

func (t Trigger) String() string {
	if t > 0 && int(t) < len(triggerNames) {
		return triggerNames[t]
	}
	return fmt.Sprintf("trigger(%d)", int(t))
}

// Transition is the host state machine. It returns the next
// state, or ErrConflict when the trigger is not allowed in state from.
//
// Repeats are allowed where firmware or installers repeat themselves: a
// host already booting may be served its install script again (iPXE
// retries, a VM reset mid-boot), and an installing host may fetch its
// user-data again (the installer retries). A repeated "done" is not a
// transition: callers treat installed+done as already recorded.
func Transition(from State, t Trigger) (State, error) {
	switch t {
	case TriggerAssign:
		if from == StateDiscovered || from == StateReady {
			return StateReady, nil
		}
	case TriggerScript:
		if from == StateReady || from == StateBooting || from == StateInstalling {
			return StateBooting, nil
		}
	case TriggerUserData:
		if from == StateBooting || from == StateInstalling {
			return StateInstalling, nil
		}
	case TriggerDone:
		if from.Live() {
			return StateInstalled, nil
		}
	case TriggerFailed:
		if from.Live() {
			return StateFailed, nil
		}
	case TriggerReprovision:
		// Stalled attempts (booting, installing) may be restarted too:
		// the operator is the one who knows the host was power-cycled.
		if from == StateInstalled || from == StateFailed || from == StateReady || from.Live() {
			return StateReady, nil
		}
	}
	return from, fmt.Errorf("%w: %s not allowed in state %s", ErrConflict, t, from)
}
