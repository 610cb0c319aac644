//go:build e2e

package e2e

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
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

// checkTimeline checks the timeline of mac's install: one attempt (the
// boot to local disk after it is not one), installed, with want as its
// phases in order, each starting where the previous ended with a
// non-negative duration, and stage 1 within stage1Bound of iPXE's ACK.
// It logs every phase.
func (s *server) checkTimeline(mac string, want ...string) {
	t := s.t
	t.Helper()
	tl := s.timeline(mac)
	if len(tl) != 1 {
		t.Fatalf("%d boot attempts for one install: %+v; events: %+v", len(tl), tl, s.events(mac))
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
		t.Errorf("attempt %d %q with phases %v, want attempt 1 installed with %v; events: %+v", a.Attempt, a.Outcome, got, want, s.events(mac))
	}
}
