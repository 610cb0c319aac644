package neigh_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
	"github.com/stagehand-dev/stagehand/neigh"
)

// TestLookupKernel reads a real kernel table: a peer namespace and the
// server namespace exchange a UDP datagram each way, as a TFTP client and
// server do, so the server's kernel has resolved the peer's address; the lookup, run on a thread in the server namespace, must name
// exactly the peer's eth0 MAC, on the bridge it was resolved on and on no
// other interface. An address nobody has is not found.
func TestLookupKernel(t *testing.T) {
	n := lab.NewNet(t, "neigh", "10.98.1.1/24")
	peer := n.AddPeer(t, "peer", "10.98.1.20/24")
	exchange(t, n.NS, peer)
	out, err := exec.Command("ip", "-n", peer, "-br", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatalf("peer's MAC: %v", err)
	}
	want := macField(t, string(out))

	const path = "/proc/thread-self/net/arp"
	var got, stranger, onBridge, onLo string
	var found, strangerFound, loFound bool
	err = lab.InNS(n.NS, func() error {
		mac, _, err := neigh.Table{Path: path, Device: n.Bridge}.Lookup(netip.MustParseAddr("10.98.1.20"))
		if err != nil {
			return err
		}
		onBridge = mac.String()
		mac, loFound, err = neigh.Table{Path: path, Device: "lo"}.Lookup(netip.MustParseAddr("10.98.1.20"))
		onLo = mac.String()
		if err != nil {
			return err
		}
		mac, ok, err := neigh.LookupIn(path, netip.MustParseAddr("10.98.1.20"))
		if err != nil {
			return err
		}
		got, found = mac.String(), ok
		mac, ok, err = neigh.LookupIn(path, netip.MustParseAddr("10.98.1.21"))
		stranger, strangerFound = mac.String(), ok
		return err
	})
	if err != nil {
		t.Fatalf("lookup in %s: %v", n.NS, err)
	}
	if !found || got != want {
		t.Fatalf("lookup of the peer 10.98.1.20: %q (found %v), want %q", got, found, want)
	}
	if onBridge != want {
		t.Fatalf("lookup of the peer on %s: %q, want %q", n.Bridge, onBridge, want)
	}
	if loFound {
		t.Fatalf("lookup of the peer on lo found %q: the entry is on %s", onLo, n.Bridge)
	}
	if strangerFound {
		t.Fatalf("lookup of an unused address found %q", stranger)
	}
}

// macField takes the MAC from `ip -br link show` output
// ("eth0@if5  UP  52:54:...  <...>").
func macField(t *testing.T, line string) string {
	t.Helper()
	var name, state, mac string
	if _, err := fmt.Sscan(line, &name, &state, &mac); err != nil {
		t.Fatalf("cannot read %q: %v", line, err)
	}
	return mac
}

// exchange sends a datagram from the peer to the server namespace and an
// answer back; the answer cannot leave before the server's kernel has
// resolved the peer's MAC.
func exchange(t *testing.T, serverNS, peerNS string) {
	t.Helper()
	srv, err := lab.ListenPacketIn(serverNS, "udp4", "10.98.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := lab.ListenPacketIn(peerNS, "udp4", "10.98.1.20:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(10 * time.Second)
	srv.SetDeadline(deadline)
	cli.SetDeadline(deadline)
	if _, err := cli.WriteTo([]byte("ping"), srv.LocalAddr()); err != nil {
		t.Fatalf("peer → server: %v", err)
	}
	buf := make([]byte, 16)
	_, from, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatalf("server reading the peer's datagram: %v", err)
	}
	if _, err := srv.WriteTo([]byte("pong"), from); err != nil {
		t.Fatalf("server → peer: %v", err)
	}
	if _, _, err := cli.ReadFrom(buf); err != nil {
		t.Fatalf("peer reading the answer: %v", err)
	}
}
