package inventory

import (
	"strings"
	"testing"
)

// States is the one list of states: complete, in lifecycle order, and
// each name parses back to its state.
func TestStates(t *testing.T) {
	all := States()
	if len(all) == 0 || all[0] != StateDiscovered {
		t.Fatalf("States() = %v, want it to start with discovered", all)
	}
	for i, s := range all {
		if i > 0 && s <= all[i-1] {
			t.Errorf("States() out of order at %d: %v", i, all)
		}
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, err)
		}
	}
	// Every value with a name is listed: a state added to the constants
	// and names but left out of States would fail here.
	listed := map[State]bool{}
	for _, s := range all {
		listed[s] = true
	}
	for s := State(-2); s < 64; s++ {
		named := !strings.HasPrefix(s.String(), "state(")
		if named != listed[s] {
			t.Errorf("state %d (%s): named %v, listed %v", int(s), s, named, listed[s])
		}
	}
	all[0] = StateFailed
	if States()[0] != StateDiscovered {
		t.Error("States() returns a shared slice")
	}
	_, err := ParseState("rebooting")
	if err == nil || !strings.Contains(err.Error(), strings.Join([]string{"discovered", "ready", "booting", "installing", "installed", "failed"}, ", ")) {
		t.Errorf("ParseState(rebooting) error %v does not list the states", err)
	}
}
