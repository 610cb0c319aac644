package neigh

import (
	"net/netip"
	"strings"
	"testing"
)

const table = `IP address       HW type     Flags       HW address            Mask     Device
10.99.7.113      0x1         0x2         52:54:00:e2:07:01     *        br0
10.99.7.114      0x1         0x0         00:00:00:00:00:00     *        br0
10.99.7.115      0x1         0x6         52:54:00:e2:07:03     *        br0
10.99.7.116      0x1         0x2         garbage               *        br0
10.99.7.116      0x1         0x2         52:54:00:e2:07:04     *        eth1
10.99.7.117      0x20        0x2         80:00:00:48:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01     *        ib0
10.99.7.118      0x1         zz          52:54:00:e2:07:05     *        br0
10.99.7.1190     0x1         0x2         52:54:00:e2:07:06     *        br0
short line
`

func TestFind(t *testing.T) {
	tests := []struct {
		ip     string
		want   string // "" = not found
		reason string
	}{
		{"10.99.7.113", "52:54:00:e2:07:01", "resolved entry"},
		{"10.99.7.114", "", "incomplete: flags 0, zero MAC"},
		{"10.99.7.115", "52:54:00:e2:07:03", "resolved and permanent (ATF_COM|ATF_PERM)"},
		{"10.99.7.116", "52:54:00:e2:07:04", "an unreadable row does not hide a later good one"},
		{"10.99.7.117", "", "not an Ethernet address (InfiniBand)"},
		{"10.99.7.118", "", "unreadable flags"},
		{"10.99.7.119", "", "a longer address with the same prefix is another host"},
		{"10.99.7.2", "", "absent"},
		{"::1", "", "not IPv4"},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			mac, ok, err := find(strings.NewReader(table), netip.MustParseAddr(tc.ip), "")
			if err != nil {
				t.Fatalf("find(%s): %v", tc.ip, err)
			}
			got := ""
			if ok {
				got = mac.String()
			}
			if got != tc.want {
				t.Fatalf("find(%s) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}

func TestFindHeaderOnly(t *testing.T) {
	header := "IP address       HW type     Flags       HW address            Mask     Device\n"
	if _, ok, err := find(strings.NewReader(header), netip.MustParseAddr("10.0.0.1"), ""); ok || err != nil {
		t.Fatalf("empty table: ok %v err %v", ok, err)
	}
}

func TestLookupMissingFile(t *testing.T) {
	if _, _, err := LookupIn(t.TempDir()+"/arp", netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Fatal("LookupIn on a missing file: no error")
	}
}

// TestFindOnDevice: an entry counts only on the interface asked about;
// the same address resolved on another interface is another network's.
func TestFindOnDevice(t *testing.T) {
	tests := []struct {
		ip, dev string
		want    string // "" = not found
		reason  string
	}{
		{"10.99.7.113", "br0", "52:54:00:e2:07:01", "resolved on the interface asked about"},
		{"10.99.7.113", "eth1", "", "resolved only on another interface"},
		{"10.99.7.116", "eth1", "52:54:00:e2:07:04", "the row on the interface asked about, after an unreadable one"},
		{"10.99.7.116", "br0", "", "the row on br0 is unreadable; eth1's does not count"},
		{"10.99.7.120", "br1", "52:54:00:e2:07:08", "the second of two rows for one address"},
		{"10.99.7.120", "br0", "52:54:00:e2:07:07", "the first of two rows for one address"},
		{"10.99.7.121", "br0", "", "a row without a Device column names no interface"},
		{"10.99.7.121", "", "52:54:00:e2:07:09", "without a device, the same row counts"},
	}
	const twoNets = table + `10.99.7.120      0x1         0x2         52:54:00:e2:07:07     *        br0
10.99.7.120      0x1         0x2         52:54:00:e2:07:08     *        br1
10.99.7.121      0x1         0x2         52:54:00:e2:07:09
`
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			mac, ok, err := find(strings.NewReader(twoNets), netip.MustParseAddr(tc.ip), tc.dev)
			if err != nil {
				t.Fatalf("find(%s, %q): %v", tc.ip, tc.dev, err)
			}
			got := ""
			if ok {
				got = mac.String()
			}
			if got != tc.want {
				t.Fatalf("find(%s, %q) = %q, want %q", tc.ip, tc.dev, got, tc.want)
			}
		})
	}
}
