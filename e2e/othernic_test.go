//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/lab"
)

// TestBootFromOtherNIC: the manifest keys a server by one NIC, and it
// PXE-boots from another. With the default --unknown-hosts ignore the
// booting NIC's MAC would get no DHCP answer at all; listed in the host's
// otherMACs, it boots, installs and is recorded as that host (the second
// boot goes to local disk), and no record is made for the NIC's own MAC.
func TestBootFromOtherNIC(t *testing.T) {
	s := proxyLab(t, "othernic", "10")
	manifestMAC, bootMAC, name := "52:54:00:e2:0a:01", "52:54:00:e2:0a:02", "rack1-twonic"
	s.cli("host", "add", manifestMAC, "--profile", "lab", "--name", name, "--other-macs", bootMAC)

	installThenLocal(t, s, lab.VMOptions{Firmware: lab.BIOS, MAC: bootMAC, NICROM: true}, name)

	h := s.host(manifestMAC)
	if h.State != "installed" || h.Attempt != 1 {
		t.Fatalf("host %s after booting from %s: state %q attempt %d", manifestMAC, bootMAC, h.State, h.Attempt)
	}
	if countKind(s.events(manifestMAC), "dhcp") == 0 {
		t.Errorf("the DHCP exchange of %s is not on %s's record", bootMAC, manifestMAC)
	}
	// The NIC's MAC looks the host up; no record of its own was made.
	if h := s.host(bootMAC); h.MAC != manifestMAC {
		t.Fatalf("host show %s: %+v, want the host %s", bootMAC, h, manifestMAC)
	}
	if out := s.cli("host", "list", "--output", "json"); strings.Count(out, `"mac":`) != 1 {
		t.Fatalf("host list after the boot, want one host:\n%s", out)
	}
}
