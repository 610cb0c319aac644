package ipxe

import "fmt"

// Action is what stage 2 tells a host to do.
type Action int

const (
	ActionUnknown  Action = iota + 1 // not in the inventory and not to be recorded: print why, boot nothing
	ActionDiscover                   // record the stranger's facts, then wait for an operator
	ActionWait                       // known but not yet assigned a profile: wait and ask again
	ActionInstall                    // serve the installer
	ActionLocal                      // boot the local disk
)

func (a Action) String() string {
	switch a {
	case ActionUnknown:
		return "unknown"
	case ActionDiscover:
		return "discover"
	case ActionWait:
		return "wait"
	case ActionInstall:
		return "install"
	case ActionLocal:
		return "local"
	}
	return "action?"
}

// UnknownPolicy is what to do with MACs the inventory does not know.
type UnknownPolicy int

const (
	UnknownIgnore   UnknownPolicy = iota // say nothing (the DHCP server already stays silent)
	UnknownDiscover                      // record them as discovered
	UnknownProfile                       // enrol them with a default profile and install
)

// HostState is where a known host is in its provisioning life, as the
// boot decision sees it. The inventory owns the state machine and this
// package does not import it: the caller maps each inventory state to one
// of these in one exhaustive function whose test fails when a state is
// added without a mapping. A typed value, not the state's name, so that
// renaming a state cannot silently turn every host into a stranger.
type HostState int

const (
	StateNone       HostState = iota // no state: Decide answers ActionUnknown for a known host
	StateDiscovered                  // seen, no profile yet
	StateReady                       // has a profile, not yet booted
	StateBooting                     // install script served
	StateInstalling                  // installer fetched its user-data
	StateInstalled                   // installer reported completion
	StateFailed                      // installer reported failure
)

var hostStateNames = [...]string{
	StateNone:       "none",
	StateDiscovered: "discovered",
	StateReady:      "ready",
	StateBooting:    "booting",
	StateInstalling: "installing",
	StateInstalled:  "installed",
	StateFailed:     "failed",
}

func (s HostState) String() string {
	if s >= 0 && int(s) < len(hostStateNames) {
		return hostStateNames[s]
	}
	return fmt.Sprintf("hoststate(%d)", int(s))
}

// Input is everything the boot decision looks at.
type Input struct {
	Known   bool
	State   HostState
	Unknown UnknownPolicy
}

// Decide is the boot decision: pure and idempotent, because firmware asks
// the same question several times per boot (retries, resets) and each
// answer must be the same. It takes no clock: nothing it decides depends
// on time (a stalled attempt is still reinstalled on its next boot; when
// the attempt outran its timeout is the report's business, not the
// boot's), and an argument it ignored would promise otherwise.
//
// The rule that matters most: a host that has reported completion is
// never reinstalled unless an operator says so. failed hosts likewise
// boot local disk; an installer that failed half-way may have left a
// bootable disk the operator wants to inspect, and a loop of failing
// installs helps no one.
func Decide(in Input) Action {
	if !in.Known {
		switch in.Unknown {
		case UnknownDiscover:
			return ActionDiscover
		case UnknownProfile:
			return ActionInstall
		}
		return ActionUnknown
	}
	switch in.State {
	case StateReady, StateBooting, StateInstalling:
		// booting/installing again means the host was reset mid-install:
		// the disk is in an unknown state, so the only safe thing is to
		// run the installer again (same attempt, fresh token).
		return ActionInstall
	case StateInstalled, StateFailed:
		return ActionLocal
	case StateDiscovered:
		return ActionWait
	}
	return ActionUnknown
}
