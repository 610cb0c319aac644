package ipxe

import "time"

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

// HostState is the part of the inventory the decision needs. It is a
// plain string so that this package stays free of the inventory.
type HostState string

// Input is everything the boot decision looks at.
type Input struct {
	Known   bool
	State   HostState // discovered, ready, booting, installing, installed, failed
	Unknown UnknownPolicy
}

// Decide is the boot decision: pure, idempotent, and with the clock
// passed in, because firmware asks the same question several times per
// boot (retries, resets) and each answer must be the same.
//
// The rule that matters most: a host that has reported completion is
// never reinstalled unless an operator says so. failed hosts likewise
// boot local disk; an installer that failed half-way may have left a
// bootable disk the operator wants to inspect, and a loop of failing
// installs helps no one.
func Decide(in Input, now time.Time) Action {
	_ = now // install timeouts (stalled hosts) will read it; callers already pass the clock
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
	case "ready", "booting", "installing":
		// booting/installing again means the host was reset mid-install:
		// the disk is in an unknown state, so the only safe thing is to
		// run the installer again (same attempt, fresh token).
		return ActionInstall
	case "installed", "failed":
		return ActionLocal
	case "discovered":
		return ActionWait
	}
	return ActionUnknown
}
