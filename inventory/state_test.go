package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

var allStates = []State{StateDiscovered, StateReady, StateBooting, StateInstalling, StateInstalled, StateFailed}

var allTriggers = []Trigger{TriggerAssign, TriggerScript, TriggerUserData, TriggerDone, TriggerFailed, TriggerReprovision}

func TestTransition(t *testing.T) {
	const conflict = State(-1)
	// Every (state, trigger) pair of the state machine, including
	// the repeats firmware and installers make (script while booting,
	// user-data while installing).
	tests := []struct {
		from State
		trig Trigger
		want State // conflict: ErrConflict expected
	}{
		{StateDiscovered, TriggerAssign, StateReady},
		{StateDiscovered, TriggerScript, conflict},
		{StateDiscovered, TriggerUserData, conflict},
		{StateDiscovered, TriggerDone, conflict},
		{StateDiscovered, TriggerFailed, conflict},
		{StateDiscovered, TriggerReprovision, conflict},

		{StateReady, TriggerAssign, StateReady},
		{StateReady, TriggerScript, StateBooting},
		{StateReady, TriggerUserData, conflict},
		{StateReady, TriggerDone, conflict},
		{StateReady, TriggerFailed, conflict},
		{StateReady, TriggerReprovision, StateReady},

		{StateBooting, TriggerAssign, conflict},
		{StateBooting, TriggerScript, StateBooting},
		{StateBooting, TriggerUserData, StateInstalling},
		{StateBooting, TriggerDone, StateInstalled},
		{StateBooting, TriggerFailed, StateFailed},
		{StateBooting, TriggerReprovision, StateReady},

		{StateInstalling, TriggerAssign, conflict},
		{StateInstalling, TriggerScript, StateBooting},
		{StateInstalling, TriggerUserData, StateInstalling},
		{StateInstalling, TriggerDone, StateInstalled},
		{StateInstalling, TriggerFailed, StateFailed},
		{StateInstalling, TriggerReprovision, StateReady},

		{StateInstalled, TriggerAssign, conflict},
		{StateInstalled, TriggerScript, conflict},
		{StateInstalled, TriggerUserData, conflict},
		{StateInstalled, TriggerDone, conflict},
		{StateInstalled, TriggerFailed, conflict},
		{StateInstalled, TriggerReprovision, StateReady},

		{StateFailed, TriggerAssign, conflict},
		{StateFailed, TriggerScript, conflict},
		{StateFailed, TriggerUserData, conflict},
		{StateFailed, TriggerDone, conflict},
		{StateFailed, TriggerFailed, conflict},
		{StateFailed, TriggerReprovision, StateReady},

		// Values outside the enums are refused, not mapped somewhere.
		{State(0), TriggerScript, conflict},
		{State(99), TriggerReprovision, conflict},
		{StateReady, Trigger(0), conflict},
		{StateReady, Trigger(42), conflict},
	}
	seen := map[[2]int]bool{}
	for _, tc := range tests {
		seen[[2]int{int(tc.from), int(tc.trig)}] = true
		t.Run(fmt.Sprintf("%s/%s", tc.from, tc.trig), func(t *testing.T) {
			got, err := Transition(tc.from, tc.trig)
			if tc.want == conflict {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("Transition(%s, %s) = %s, %v; want ErrConflict", tc.from, tc.trig, got, err)
				}
				if got != tc.from {
					t.Errorf("refused transition returned state %s, want the unchanged %s", got, tc.from)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Transition(%s, %s) = %s, %v; want %s", tc.from, tc.trig, got, err, tc.want)
			}
		})
	}
	for _, s := range allStates {
		for _, tr := range allTriggers {
			if !seen[[2]int{int(s), int(tr)}] {
				t.Errorf("table misses (%s, %s)", s, tr)
			}
		}
	}
}

func TestStateStringParseJSON(t *testing.T) {
	for _, s := range allStates {
		p, err := ParseState(s.String())
		if err != nil || p != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), p, err)
		}
		b, err := json.Marshal(s)
		if err != nil || string(b) != `"`+s.String()+`"` {
			t.Errorf("Marshal(%s) = %s, %v", s, b, err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
	if got := State(0).String(); got != "state(0)" {
		t.Errorf("State(0) = %q", got)
	}
	if got := Trigger(9).String(); got != "trigger(9)" {
		t.Errorf("Trigger(9) = %q", got)
	}
	for _, bad := range []string{"", "Ready", "state(0)", "installed "} {
		if _, err := ParseState(bad); err == nil {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
	var s State
	if err := json.Unmarshal([]byte(`"rebooting"`), &s); err == nil {
		t.Error(`Unmarshal("rebooting") accepted`)
	}
	if err := json.Unmarshal([]byte(`3`), &s); err == nil {
		t.Error("Unmarshal(3) accepted a number")
	}
}

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		in, want string // want "": ErrInvalid
	}{
		{"aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"},
		{"AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"},
		{"aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"}, // iPXE ${mac:hexhyp}
		{"52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef"},
		{"aabbccddeeff", "aa:bb:cc:dd:ee:ff"}, // manifests
		{"AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff"},
		{"aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"}, // Cisco dotted
		{"  aa:bb:cc:dd:ee:ff\n", "aa:bb:cc:dd:ee:ff"},
		{"", ""},
		{"garbage", ""},
		{"zz:bb:cc:dd:ee:ff", ""},
		{"aa:bb:cc:dd:ee", ""},
		{"aabbccddeef", ""},
		{"aabbccddeefg", ""},
		{"aa:bb:cc:dd:ee:ff:00:11", ""}, // EUI-64 is not Ethernet
		{"aa:bb-cc:dd:ee:ff", ""},
		{"aa:bb:cc:dd:ee:ff/../x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeMAC(tc.in)
			if tc.want == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NormalizeMAC(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeMAC(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
