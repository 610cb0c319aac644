package ipxe

import (
	"fmt"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	policies := []UnknownPolicy{UnknownIgnore, UnknownDiscover, UnknownProfile}
	now := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

	// Known hosts: the state alone decides, whatever the unknown policy.
	known := []struct {
		state HostState
		want  Action
	}{
		{"discovered", ActionWait},
		{"ready", ActionInstall},
		{"booting", ActionInstall},    // reset mid-boot: run the installer again
		{"installing", ActionInstall}, // reset mid-install: the disk is in an unknown state
		{"installed", ActionLocal},    // never reinstalled without an operator
		{"failed", ActionLocal},
		{"", ActionUnknown},
		{"Installed", ActionUnknown},
		{"rebooting", ActionUnknown},
	}
	for _, tc := range known {
		for _, pol := range policies {
			t.Run(fmt.Sprintf("known/%s/policy%d", tc.state, pol), func(t *testing.T) {
				in := Input{Known: true, State: tc.state, Unknown: pol}
				if got := Decide(in, now); got != tc.want {
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
		for _, st := range []HostState{"", "installed", "ready"} {
			t.Run(fmt.Sprintf("unknown/policy%d/%q", tc.policy, st), func(t *testing.T) {
				in := Input{Known: false, State: st, Unknown: tc.policy}
				if got := Decide(in, now); got != tc.want {
					t.Fatalf("Decide(%+v) = %s, want %s", in, got, tc.want)
				}
			})
		}
	}
}

// Firmware asks the same question several times per boot: the answer
// must not depend on when it asks.
func TestDecideIdempotent(t *testing.T) {
	in := Input{Known: true, State: "installed"}
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, time.Second, time.Hour, 30 * 24 * time.Hour} {
		if got := Decide(in, t0.Add(d)); got != ActionLocal {
			t.Fatalf("Decide at +%v = %s", d, got)
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
