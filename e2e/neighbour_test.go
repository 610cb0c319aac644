//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// TestTFTPAttributedWithoutDHCP: in proxy mode stagehand learns which host
// is at an address by overhearing its broadcast REQUEST to the site's
// DHCP server. On a lossy network that one frame can be lost (it failed
// TestBootUnderLoss once in CI), and the firmware's TFTP transfer was then
// recorded on no host. The kernel's neighbour table still knows the MAC
// behind the address once the transfer has run; stagehand falls back to
// it. Here no DHCP happens at all: a peer whose eth0 carries a known
// host's MAC fetches undionly.kpxe with curl, and the transfer must be on
// that host's record, with the bytes curl received.
func TestTFTPAttributedWithoutDHCP(t *testing.T) {
	n := lab.NewNet(t, "neigh", "10.99.8.1/24")
	mac := "52:54:00:e2:08:01"
	peer := n.AddPeer(t, "fw", "10.99.8.50/24")
	for _, args := range [][]string{
		{"-n", peer, "link", "set", "eth0", "down"},
		{"-n", peer, "link", "set", "eth0", "address", mac},
		{"-n", peer, "link", "set", "eth0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	s := startServer(t, n, "--dhcp-mode", "proxy")
	s.addLabProfile("lab", "")
	s.cli("host", "add", mac, "--profile", "lab", "--name", "neigh-1")

	out := filepath.Join(t.TempDir(), "undionly.kpxe")
	if b, err := exec.Command("ip", "netns", "exec", peer, "curl", "-sS", "--max-time", "30",
		"-o", out, "tftp://10.99.8.1/undionly.kpxe").CombinedOutput(); err != nil {
		t.Fatalf("curl from the peer: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil || len(got) == 0 {
		t.Fatalf("curl wrote %d bytes: %v", len(got), err)
	}
	want := fmt.Sprintf("undionly.kpxe %d bytes", len(got))

	// The event is committed when the server sees the last ACK, which
	// curl sends just before it exits.
	var ev []event
	for deadline := time.Now().Add(10 * time.Second); ; {
		ev = s.events(mac)
		if countKind(ev, "tftp") > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if countKind(ev, "dhcp") != 0 {
		t.Fatalf("a DHCP event on %s: the test meant to have none; events %+v", mac, ev)
	}
	var details []string
	for _, e := range ev {
		if e.Kind == "tftp" {
			details = append(details, e.Detail)
		}
	}
	if len(details) != 1 || details[0] != want {
		t.Fatalf("tftp events on %s: %q, want exactly [%q]", mac, details, want)
	}
}
