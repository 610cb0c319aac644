package inventory

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDHCPAddress(t *testing.T) {
	for _, tt := range []struct{ in, want, reason string }{
		{"10.0.0.5", "10.0.0.5", ""},
		{" 10.0.0.5 ", "10.0.0.5", ""},
		{"10.0.0", "", "is not an IPv4 address"},
		{"fe80::1", "", "is not an IPv4 address"},
		{"::ffff:10.0.0.5", "", "is not an IPv4 address"},
		{"0.0.0.0", "", "cannot be a host's address"},
		{"127.0.0.1", "", "cannot be a host's address"},
		{"224.0.0.1", "", "cannot be a host's address"},
		{"255.255.255.255", "", "cannot be a host's address"},
	} {
		got, reason := normalizeDHCPAddress(tt.in)
		if tt.reason == "" && (got != tt.want || reason != "") {
			t.Errorf("%q: got %q, %q; want %q", tt.in, got, reason, tt.want)
		}
		if tt.reason != "" && !strings.Contains(reason, tt.reason) {
			t.Errorf("%q: reason %q, want it to contain %q", tt.in, reason, tt.reason)
		}
	}
}

// Reserved DHCP addresses are unique across hosts, like names: the error
// names both hosts, and the index follows updates, deletes and imports.
func TestDHCPAddressReservations(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "alpha", Profile: "edge", DHCPAddress: "10.0.0.5"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Name: "beta", Profile: "edge"})

	_, err := s.CreateHost(Host{MAC: "aa:bb:cc:00:00:03", Name: "gamma", Profile: "edge", DHCPAddress: "10.0.0.5"})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "aa:bb:cc:00:00:03 (gamma): field dhcpAddress: 10.0.0.5 is already reserved for host aa:bb:cc:00:00:01 (alpha)") {
		t.Fatalf("duplicate reservation: %v", err)
	}
	_, err = s.CreateHost(Host{MAC: "aa:bb:cc:00:00:03", Profile: "edge", DHCPAddress: "10.0.0.999"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `host aa:bb:cc:00:00:03: field dhcpAddress: "10.0.0.999" is not an IPv4 address`) {
		t.Fatalf("bad address: %v", err)
	}
	before := mustHosts(t, s)
	if _, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.DHCPAddress = "10.0.0.5"; return nil }); !errors.Is(err, ErrExists) {
		t.Fatalf("update onto a reserved address: %v", err)
	}
	unchanged(t, s, before)
	if mac, err := s.ReservedFor("10.0.0.5"); err != nil || mac != "aa:bb:cc:00:00:01" {
		t.Fatalf("ReservedFor = %q, %v", mac, err)
	}

	// Moving a reservation frees the old address; deleting the host frees
	// the new one.
	if _, err := s.UpdateHost("aa:bb:cc:00:00:01", func(h *Host) error { h.DHCPAddress = "10.0.0.6"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReservedFor("10.0.0.5"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old address still reserved: %v", err)
	}
	if _, err := s.UpdateHost("aa:bb:cc:00:00:02", func(h *Host) error { h.DHCPAddress = "10.0.0.5"; return nil }); err != nil {
		t.Fatalf("taking a freed address: %v", err)
	}
	if err := s.DeleteHost("aa:bb:cc:00:00:01"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReservedFor("10.0.0.6"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted host's address still reserved: %v", err)
	}
}

func TestImportDHCPAddress(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	res, err := s.Import(parse(t, "mac,profile,dhcpAddress\naa:bb:cc:00:00:01,edge,10.0.0.5\naa:bb:cc:00:00:02,edge,10.0.0.6\naa:bb:cc:00:00:03,edge,\n"))
	if err != nil || res.Created != 3 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	// A swap within one manifest is not a collision.
	if _, err := s.Import(parse(t, "mac,dhcp_address\naa:bb:cc:00:00:01,10.0.0.6\naa:bb:cc:00:00:02,10.0.0.5\n")); err != nil {
		t.Fatalf("swap: %v", err)
	}
	for ip, want := range map[string]string{"10.0.0.5": "aa:bb:cc:00:00:02", "10.0.0.6": "aa:bb:cc:00:00:01"} {
		if mac, err := s.ReservedFor(ip); mac != want {
			t.Errorf("after swap %s reserved for %q (%v), want %s", ip, mac, err, want)
		}
	}
	// Duplicates within the file, against the store, and bad addresses
	// are all reported, and nothing is written.
	before := mustHosts(t, s)
	_, err = s.Import(parse(t, "mac,dhcpAddress\naa:bb:cc:00:00:03,10.0.0.7\naa:bb:cc:00:00:04,10.0.0.7\naa:bb:cc:00:00:05,10.0.0.5\naa:bb:cc:00:00:06,nope\n"))
	rows := importErr(t, err)
	if len(rows) != 3 || rows[0].Row != 3 || !strings.Contains(rows[0].Reason, "also reserved by row 2") ||
		!strings.Contains(rows[1].Reason, "already reserved for host aa:bb:cc:00:00:02") || !strings.Contains(rows[2].Reason, `"nope" is not an IPv4 address`) {
		t.Fatalf("rows = %+v", rows)
	}
	unchanged(t, s, before)
}
