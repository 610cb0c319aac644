package api

import (
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// bootState maps an inventory state to the boot decision's. It is the
// only place the two enums meet; TestBootStateCoversEveryState fails when
// a state is added to the inventory without a line here, so a new state
// can never fall through to ipxe.StateNone and make every host in it "not
// in the inventory".
func bootState(s inventory.State) ipxe.HostState {
	switch s {
	case inventory.StateDiscovered:
		return ipxe.StateDiscovered
	case inventory.StateReady:
		return ipxe.StateReady
	case inventory.StateBooting:
		return ipxe.StateBooting
	case inventory.StateInstalling:
		return ipxe.StateInstalling
	case inventory.StateInstalled:
		return ipxe.StateInstalled
	case inventory.StateFailed:
		return ipxe.StateFailed
	}
	return ipxe.StateNone
}
