package api

import (
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// Every inventory state maps to its own boot-decision state of the same
// name, and every known host gets a decision other than "unknown".
func TestBootStateCoversEveryState(t *testing.T) {
	seen := map[ipxe.HostState]inventory.State{}
	for _, s := range inventory.States() {
		b := bootState(s)
		if b == ipxe.StateNone {
			t.Errorf("inventory state %s has no boot state: hosts in it would be treated as not in the inventory", s)
			continue
		}
		if prev, dup := seen[b]; dup {
			t.Errorf("inventory states %s and %s both map to %s", prev, s, b)
		}
		seen[b] = s
		if b.String() != s.String() {
			t.Errorf("inventory state %s maps to boot state %s", s, b)
		}
		if a := ipxe.Decide(ipxe.Input{Known: true, State: b}); a == ipxe.ActionUnknown {
			t.Errorf("a known host in state %s is answered %s", s, a)
		}
	}
	if b := bootState(inventory.State(0)); b != ipxe.StateNone {
		t.Errorf("the zero inventory state maps to %s, want none", b)
	}
}
