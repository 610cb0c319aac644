package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/server"
)

// host add/update --dhcp-address store a reservation, refuse a taken or
// malformed one naming the hosts, and dhcpHosts hands it to the DHCP
// server.
func TestCLIDHCPAddress(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--name", "a1", "--dhcp-address", "10.0.0.5")...)
	mustCLI(t, rs.with("host", "add", cm2, "--profile", "edge", "--name", "a2")...)
	_, err := cli(t, rs.with("host", "update", cm2, "--dhcp-address", "10.0.0.5")...)
	if err == nil || !strings.Contains(err.Error(), "field dhcpAddress: 10.0.0.5 is already reserved for host "+cm1+" (a1)") || !strings.Contains(err.Error(), cm2+" (a2)") {
		t.Fatalf("taken address: %v", err)
	}
	if _, err := cli(t, rs.with("host", "add", cm3, "--dhcp-address", "10.0.0")...); err == nil || !strings.Contains(err.Error(), `field dhcpAddress: "10.0.0" is not an IPv4 address`) {
		t.Fatalf("malformed address: %v", err)
	}
	mustCLI(t, rs.with("host", "update", cm2, "--dhcp-address", "10.0.0.6")...)

	h := server.DHCPHosts(rs.st)
	hw1, _ := net.ParseMAC(cm1)
	hw2, _ := net.ParseMAC(cm2)
	if a, known := h.Lookup(hw2); !known || a != netip.MustParseAddr("10.0.0.6") {
		t.Errorf("Lookup(%s) = %v, %v", cm2, a, known)
	}
	if got := h.ReservedFor(netip.MustParseAddr("10.0.0.5")); got.String() != hw1.String() {
		t.Errorf("ReservedFor(10.0.0.5) = %v", got)
	}
	// Clearing the reservation frees the address.
	mustCLI(t, rs.with("host", "update", cm1, "--dhcp-address", "")...)
	if got := h.ReservedFor(netip.MustParseAddr("10.0.0.5")); got != nil {
		t.Errorf("cleared reservation still held by %v", got)
	}
	if a, known := h.Lookup(net.HardwareAddr{2, 0, 0, 0, 0, 9}); known || a.IsValid() {
		t.Errorf("unknown MAC: %v, %v", a, known)
	}
}

// host add/update --other-macs: stored normalized, refused when taken
// (naming both hosts), cleared with ""; the DHCP gate (--unknown-hosts
// ignore) admits the other NIC, and dhcpHosts knows it without handing
// it the host's reservation.
func TestCLIOtherMACs(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	nic := "52:54:00:ee:00:f1"
	mustCLI(t, rs.with("host", "add", cm1, "--profile", "edge", "--name", "a1", "--dhcp-address", "10.0.0.5", "--other-macs", "52-54-00-EE-00-F1, 52:54:00:ee:00:f2")...)
	out := mustCLI(t, rs.with("host", "show", cm1, "--output", "json")...)
	if !strings.Contains(out, `"otherMACs": [`) || !strings.Contains(out, `"`+nic+`"`) || !strings.Contains(out, `"52:54:00:ee:00:f2"`) {
		t.Fatalf("host show: %s", out)
	}
	mustCLI(t, rs.with("host", "add", cm2, "--profile", "edge", "--name", "a2")...)
	_, err := cli(t, rs.with("host", "update", cm2, "--other-macs", nic)...)
	if err == nil || !strings.Contains(err.Error(), "field otherMACs: "+nic+" is already another NIC of host "+cm1+" (a1)") {
		t.Fatalf("taken NIC: %v", err)
	}

	gate := server.AdmitPolicy(rs.st, ipxe.UnknownIgnore)
	h := server.DHCPHosts(rs.st)
	hwNIC, _ := net.ParseMAC(nic)
	hw1, _ := net.ParseMAC(cm1)
	if !gate.Admit(&dhcp.Client{MAC: hwNIC}) {
		t.Errorf("the DHCP gate turned away %s, another NIC of %s", nic, cm1)
	}
	if a, known := h.Lookup(hwNIC); !known || a.IsValid() {
		t.Errorf("Lookup(other NIC) = %v, %v; want known, no reservation", a, known)
	}
	if a, known := h.Lookup(hw1); !known || a != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("Lookup(%s) = %v, %v", cm1, a, known)
	}

	// Clearing them: the NIC is a stranger again.
	mustCLI(t, rs.with("host", "update", cm1, "--other-macs", "")...)
	if gate.Admit(&dhcp.Client{MAC: hwNIC}) {
		t.Errorf("the DHCP gate still admits %s after its host dropped it", nic)
	}
	if out := mustCLI(t, rs.with("host", "show", cm1, "--output", "json")...); strings.Contains(out, "otherMACs") {
		t.Fatalf("after clearing: %s", out)
	}
}
