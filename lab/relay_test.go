//go:build e2e

package lab_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// A host on the routed bench gets its lease from the site's DHCP server on
// the server's segment through each relay, with the router as its gateway,
// and reaches the server's segment through the router.
func TestRoutedRelays(t *testing.T) {
	for _, tc := range []struct {
		name      string
		relay     func(*testing.T, *lab.Routed, netip.Addr) func() string
		forwarded string // what the relay logs for a request it forwarded
	}{
		{"dhcrelay", func(t *testing.T, r *lab.Routed, s netip.Addr) func() string {
			return lab.RunDhcrelay(t, r, s).Output
		}, "Forwarded BOOTREQUEST for "},
		{"dnsmasq", func(t *testing.T, r *lab.Routed, s netip.Addr) func() string {
			return lab.RunDnsmasqRelay(t, r, s).Log
		}, "DHCP relay at 10.77.2.1 -> 10.77.1.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := lab.NewRouted(t, "rt", "10.77.1.2/24", "10.77.1.1/24", "10.77.2.1/24")
			site := r.AddServerPeer(t, "site", "10.77.1.3/24")
			dm := lab.RunDnsmasqSiteRemote(t, site, "eth0", "10.77.2.50", "10.77.2.99", "255.255.255.0", "10.77.2.1")
			relayLog := tc.relay(t, r, netip.MustParseAddr("10.77.1.3"))
			bench := r.Router.AddPeer(t, "host", "")

			env := udhcpc(t, bench)
			ip, err := netip.ParseAddr(env["ip"])
			if err != nil || ip.Less(netip.MustParseAddr("10.77.2.50")) || netip.MustParseAddr("10.77.2.99").Less(ip) {
				t.Fatalf("lease %q is not from the site's range for the bench; env %v\nsite log:\n%s\nrelay log:\n%s", env["ip"], env, dm.Log(), relayLog())
			}
			if env["router"] != "10.77.2.1" || env["serverid"] != "10.77.1.3" {
				t.Errorf("router %q server id %q, want 10.77.2.1 and 10.77.1.3", env["router"], env["serverid"])
			}
			if !strings.Contains(dm.Log(), "10.77.2.1") {
				t.Errorf("the site server's log does not show the relay's giaddr:\n%s", dm.Log())
			}
			// Across the router: the bench host pings the site server.
			out, err := exec.Command("ip", "netns", "exec", bench, "busybox", "ping", "-c", "1", "-W", "5", "10.77.1.3").CombinedOutput()
			if err != nil {
				t.Errorf("ping across the router: %v\n%s", err, out)
			}
			if !strings.Contains(relayLog(), tc.forwarded) {
				t.Errorf("the relay's log does not show a forwarded request (%q):\n%s", tc.forwarded, relayLog())
			}
		})
	}
}

// udhcpc runs busybox udhcpc on eth0 in ns until it binds, sets the
// address and default route it was given, and returns its environment.
func udhcpc(t *testing.T, ns string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "bound.env")
	script := filepath.Join(dir, "script.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nenv > "+envFile+
		"\nip addr add $ip/$mask dev $interface\nip route add default via $router\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "busybox", "udhcpc",
		"-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", script).CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("udhcpc never bound: %v\n%s", err, out)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}
