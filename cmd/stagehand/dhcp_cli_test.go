package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"
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

	h := dhcpHosts{rs.st}
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
