package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/inventory"
)

// TestLeaseMirror: the lease adapter keeps attribution's lease table in
// step with the store: leases stored before a restart are loaded with the
// DHCP server's, a durable put vouches for the MAC at its address, a
// release forgets it, and a put the store refuses is not mirrored.
func TestLeaseMirror(t *testing.T) {
	st, err := inventory.Open(t.TempDir(), inventory.Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp := time.Now().Add(time.Hour)
	if err := st.PutLease(inventory.Lease{MAC: "52:54:00:1e:00:01", IP: "10.0.0.51", Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	var mirror attrib.LeaseTable
	who := attrib.New(attrib.Config{Leases: &mirror})
	ls := leaseStore{s: st, mirror: &mirror}
	if got, err := ls.Leases(); err != nil || len(got) != 1 {
		t.Fatalf("Leases: %v, %v", got, err)
	}
	old, _ := net.ParseMAC("52:54:00:1e:00:01")
	if src, ok := who.Vouch(old, netip.MustParseAddr("10.0.0.51")); !ok || src != attrib.SourceLease {
		t.Fatalf("a stored lease after a restart: Vouch = %v, %v", src, ok)
	}

	hw, _ := net.ParseMAC("52:54:00:1e:00:02")
	a := netip.MustParseAddr("10.0.0.52")
	if err := ls.PutLease(dhcp.Lease{MAC: hw, IP: a, Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	if src, ok := who.Vouch(hw, a); !ok || src != attrib.SourceLease {
		t.Fatalf("after PutLease: Vouch = %v, %v", src, ok)
	}
	if err := ls.DeleteLease(hw); err != nil {
		t.Fatal(err)
	}
	if src, ok := who.Vouch(hw, a); ok {
		t.Fatalf("after DeleteLease: Vouch = %v", src)
	}
	bad := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if err := ls.PutLease(dhcp.Lease{MAC: bad, IP: a, Expiry: exp}); err == nil {
		t.Fatal("the store took a lease for an 8-byte MAC")
	}
	if _, _, ok := mirror.LeaseAt(a); ok {
		t.Fatal("a lease the store refused is in the mirror")
	}
}
