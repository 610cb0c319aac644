package lab

import (
	"strings"
	"testing"
)

func TestLossRuleset(t *testing.T) {
	tests := []struct {
		pct     int
		wantErr bool
		want    []string
	}{
		{pct: 5, want: []string{
			"delete table bridge sh_loss", // replaces an earlier SetLoss
			"type filter hook input priority 0",
			`iifname "tap*" counter name "seen_from_vm"`,
			`iifname "tap*" numgen random mod 100 < 5 counter name "from_vm" drop`,
			"type filter hook output priority 0",
			`oifname "tap*" numgen random mod 100 < 5 counter name "to_vm" drop`,
		}},
		{pct: 99, want: []string{"mod 100 < 99"}},
		{pct: 0, wantErr: true},   // no loss: the caller should not call SetLoss
		{pct: 100, wantErr: true}, // nothing would boot
		{pct: -1, wantErr: true},
	}
	for _, tc := range tests {
		got, err := lossRuleset(tc.pct)
		if (err != nil) != tc.wantErr {
			t.Fatalf("lossRuleset(%d): err %v, wantErr %v", tc.pct, err, tc.wantErr)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("lossRuleset(%d) lacks %q:\n%s", tc.pct, w, got)
			}
		}
		if strings.Contains(got, "hook forward") {
			t.Errorf("lossRuleset(%d) drops forwarded frames (VM ↔ other peers), want only VM ↔ server:\n%s", tc.pct, got)
		}
	}
}

func TestParseCounterPackets(t *testing.T) {
	tests := []struct {
		out     string
		want    uint64
		wantErr bool
	}{
		{out: "table bridge sh_loss {\n\tcounter to_vm {\n\t\tpackets 412 bytes 598113\n\t}\n}\n", want: 412},
		{out: "counter from_vm { packets 0 bytes 0 }", want: 0},
		{out: "Error: No such file or directory", wantErr: true},
		{out: "packets 1 bytes 2 packets 3 bytes 4", wantErr: true}, // two counters: ambiguous
	}
	for _, tc := range tests {
		got, err := parseCounterPackets(tc.out)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseCounterPackets(%q) = %d, %v; want %d, wantErr %v", tc.out, got, err, tc.want, tc.wantErr)
		}
	}
}
