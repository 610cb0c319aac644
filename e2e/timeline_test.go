//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// timeline is the host's boot attempts from `host show MAC -o json`.
func (s *server) timeline(mac string) []inventory.Attempt {
	s.t.Helper()
	var h struct {
		Timeline []inventory.Attempt `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(s.cli("host", "show", mac, "--output", "json")), &h); err != nil {
		s.t.Fatal(err)
	}
	return h.Timeline
}

// stage1Bound is the most iPXE's DHCP ACK → stage-1 request may take: the
// stage-1 request follows the ACK at once unless iPXE waits for an IPv6
// router that is not there (docs/LAB.md pitfall 3).
const stage1Bound = 2 * time.Second

// bootTimeline installs a VM with opts on s in full DHCP mode and checks
// the timeline of its install: one attempt, installed, with want as its
// phases in order, each starting where the previous ended with a
// non-negative duration, and stage 1 within stage1Bound of iPXE's ACK.
// It logs every phase.
func bootTimeline(t *testing.T, s *server, opts lab.VMOptions, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	start := time.Now()
	vm := lab.StartVM(t, s.n, opts)
	if err := vm.Wait(ctx); err != nil {
		t.Fatalf("boot: %v; serial tail:\n%s", err, lab.Tail(vm.Log(), 30))
	}
	t.Logf("VM ran %.1fs", time.Since(start).Seconds())
	if h := s.host(opts.MAC); h.State != "installed" {
		t.Fatalf("host %s is %s, want installed; serial tail:\n%s", opts.MAC, h.State, lab.Tail(vm.Log(), 30))
	}
	tl := s.timeline(opts.MAC)
	if len(tl) != 1 {
		t.Fatalf("%d boot attempts for one install: %+v; events: %+v", len(tl), tl, s.events(opts.MAC))
	}
	a := tl[0]
	var got []string
	prev := a.Start
	for _, p := range a.Phases {
		got = append(got, string(p.Phase))
		t.Logf("%-13s +%7.3fs %7.3fs", p.Phase, p.Start.Sub(a.Start).Seconds(), p.Seconds)
		if p.Seconds < 0 || p.End.Before(p.Start) || !p.Start.Equal(prev) {
			t.Errorf("phase %s: %v → %v (%v s), previous phase ended %v", p.Phase, p.Start, p.End, p.Seconds, prev)
		}
		if p.Phase == "stage1" && p.Seconds >= stage1Bound.Seconds() {
			t.Errorf("stage 1 was requested %.3fs after iPXE's DHCP ACK, want under %v", p.Seconds, stage1Bound)
		}
		prev = p.End
	}
	if a.Attempt != 1 || a.Outcome != "installed" || !slices.Equal(got, want) {
		t.Errorf("attempt %d %q with phases %v, want attempt 1 installed with %v; events: %+v", a.Attempt, a.Outcome, got, want, s.events(opts.MAC))
	}
}

// The timeline of a full-DHCP install on an isolated bridge, from real
// firmware: SeaBIOS with QEMU's iPXE NIC ROM (the ROM's iPXE does the
// DHCP: no firmware DHCP nor boot file), and OVMF's own PXE client with
// the NIC ROM disabled (firmware DHCP, snponly.efi over TFTP, then that
// iPXE's DHCP). One VM at a time.
func TestTimelineFull(t *testing.T) {
	for i, tc := range []struct {
		name string
		vm   lab.VMOptions
		want []string
	}{
		{"ipxe-rom", lab.VMOptions{Firmware: lab.BIOS, NICROM: true},
			[]string{"ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done"}},
		{"ovmf-pxe", lab.VMOptions{Firmware: lab.UEFI, NICROM: false},
			[]string{"firmware-dhcp", "boot-file", "ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := fmt.Sprintf("10.99.%d.", 41+i)
			n := lab.NewNet(t, fmt.Sprintf("tl%d", i), net+"1/24")
			s := startServer(t, n, "--dhcp-mode", "full", "--dhcp-range", net+"50-"+net+"60")
			s.addLabProfile("lab", "")
			tc.vm.MAC = fmt.Sprintf("52:54:00:e2:%d:01", 41+i)
			s.cli("host", "add", tc.vm.MAC, "--profile", "lab", "--name", "tl-"+tc.name)
			bootTimeline(t, s, tc.vm, tc.want)
		})
	}
}
