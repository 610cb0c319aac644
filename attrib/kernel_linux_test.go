package attrib_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/lab"
)

// TestVouchKernel asks a real kernel table: a peer namespace opens a TCP
// connection to the server namespace, as iPXE does for stage 2, so the
// server's kernel has resolved the peer on its bridge. The index (with no
// lease and no DHCP sighting) vouches for the peer's own MAC at its
// address, names it in MACAt, refuses any other MAC there, and refuses
// the peer's MAC when the serving interface is another one.
func TestVouchKernel(t *testing.T) {
	n := lab.NewNet(t, "attrib", "10.98.2.1/24")
	peer := n.AddPeer(t, "peer", "10.98.2.20/24")
	peerMAC, err := lab.MACOf(peer, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	connect(t, n, peer)
	peerIP := netip.MustParseAddr("10.98.2.20")

	x := attrib.New(attrib.Config{Neighbours: lab.Neighbours{NS: n.NS, Device: n.Bridge}})
	if src, ok := x.Vouch(peerMAC, peerIP); !ok || src != attrib.SourceNeighbour {
		t.Fatalf("Vouch(peer's MAC %s, %s) = %v, %v; want neighbour", peerMAC, peerIP, src, ok)
	}
	if got, src, ok := x.MACAt(peerIP); !ok || got.String() != peerMAC.String() || src != attrib.SourceNeighbour {
		t.Fatalf("MACAt(%s) = %s, %v, %v; want %s from the kernel", peerIP, got, src, ok, peerMAC)
	}
	other := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	if src, ok := x.Vouch(other, peerIP); ok {
		t.Fatalf("Vouch(another MAC, %s) = %v: the kernel names %s there", peerIP, src, peerMAC)
	}
	if _, ok := x.Vouch(peerMAC, netip.MustParseAddr("10.98.2.21")); ok {
		t.Fatal("vouched for an address nobody has")
	}
	elsewhere := attrib.New(attrib.Config{Neighbours: lab.Neighbours{NS: n.NS, Device: "lo"}})
	if src, ok := elsewhere.Vouch(peerMAC, peerIP); ok {
		t.Fatalf("serving on lo: Vouch = %v, but the entry is on %s", src, n.Bridge)
	}
}

// connect opens and closes one TCP connection from the peer to the
// server namespace; the SYN-ACK cannot leave before the server's kernel
// has resolved the peer's MAC.
func connect(t *testing.T, n *lab.Net, peer string) {
	t.Helper()
	ln, err := lab.ListenIn(n.NS, "tcp4", n.ServerIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = lab.InNS(peer, func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("peer → server: %v", err)
	}
}
