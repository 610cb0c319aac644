package ipxe

import (
	"fmt"
	"testing"
)

func TestDecide(t *testing.T) {
	policies := []UnknownPolicy{UnknownIgnore, UnknownDiscover, UnknownProfile}

	// Known hosts: the state alone decides, whatever the unknown policy.
	known := []struct {
		state HostState
		want  Action
	}{
		{StateDiscovered, ActionWait},
		{StateReady, ActionInstall},
		{StateBooting, ActionInstall},    // reset mid-boot: run the installer again
		{StateInstalling, ActionInstall}, // reset mid-install: the disk is in an unknown state
		{StateInstalled, ActionLocal},    // never reinstalled without an operator
		{StateFailed, ActionLocal},
		{StateNone, ActionUnknown},
		{HostState(-1), ActionUnknown},
		{HostState(99), ActionUnknown},
	}
	for _, tc := range known {
		for _, pol := range policies {
			t.Run(fmt.Sprintf("known/%s/policy%d", tc.state, pol), func(t *testing.T) {
				in := Input{Known: true, State: tc.state, Unknown: pol}
				if got := Decide(in); got != tc.want {
					t.Fatalf("Decide(%+v) = %s, want %s", in, got, tc.want)
				}
			})
		}
	}

	// Unknown hosts: the policy alone decides, whatever State carries.
	unknown := []struct {
		policy UnknownPolicy
		want   Action
	}{
		{UnknownIgnore, ActionUnknown},
		{UnknownDiscover, ActionDiscover},
		{UnknownProfile, ActionInstall},
		{UnknownPolicy(42), ActionUnknown},
	}
	for _, tc := range unknown {
		for _, st := range []HostState{StateNone, StateInstalled, StateReady} {
			t.Run(fmt.Sprintf("unknown/policy%d/%s", tc.policy, st), func(t *testing.T) {
				in := Input{Known: false, State: st, Unknown: tc.policy}
				if got := Decide(in); got != tc.want {
					t.Fatalf("Decide(%+v) = %s, want %s", in, got, tc.want)
				}
			})
		}
	}
}

func TestHostStateString(t *testing.T) {
	for s, want := range map[HostState]string{
		StateNone: "none", StateDiscovered: "discovered", StateReady: "ready", StateBooting: "booting",
		StateInstalling: "installing", StateInstalled: "installed", StateFailed: "failed",
		HostState(-1): "hoststate(-1)", HostState(7): "hoststate(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("HostState(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{
		ActionUnknown: "unknown", ActionDiscover: "discover", ActionWait: "wait",
		ActionInstall: "install", ActionLocal: "local", Action(0): "action?", Action(99): "action?",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestArch(t *testing.T) {
	tests := []struct {
		a          Arch
		str        string
		known, efi bool
	}{
		{ArchBIOS, "bios", true, false},
		{ArchEFIIA32, "efi-ia32", true, true},
		{ArchEFI64, "efi-x64", true, true},
		{ArchEFIBC, "efi-bc", true, true},
		{ArchARM64, "efi-arm64", true, true},
		{ArchEFI64HTTP, "efi-x64-http", true, true},
		{Arch(2), "arch-2", false, false},   // EFI Itanium
		{Arch(10), "arch-10", false, false}, // ARM 32-bit UEFI
		{Arch(19), "arch-19", false, false}, // ARM64 UEFI HTTP: not served
		{ArchUnknown, "arch-65535", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.str, func(t *testing.T) {
			if got := tc.a.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := tc.a.Known(); got != tc.known {
				t.Errorf("Known() = %v, want %v", got, tc.known)
			}
			if got := tc.a.EFI(); got != tc.efi {
				t.Errorf("EFI() = %v, want %v", got, tc.efi)
			}
		})
	}
	// Option 93's wire values, which callers convert directly.
	for a, wire := range map[Arch]uint16{ArchBIOS: 0, ArchEFI64: 7, ArchEFIBC: 9, ArchEFI64HTTP: 16} {
		if uint16(a) != wire {
			t.Errorf("%s = %d on the wire, want %d", a, uint16(a), wire)
		}
	}
}
