package main

import (
	"testing"

	"github.com/stagehand-dev/stagehand/api"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   api.Status
		want string
		done bool
	}{
		{"empty", api.Status{}, "[----------] 0/0 installed", false},
		{"half", api.Status{Total: 4, ByState: map[string]int{"installed": 2, "booting": 1, "ready": 1}},
			"[#####-----] 2/4 installed, 2 in progress", false},
		{"failed and stalled", api.Status{Total: 3, ByState: map[string]int{"installed": 1, "failed": 1, "installing": 1},
			Failed: []string{"aa (n2)"}, Stalled: []string{"bb (n3)"}},
			"[###-------] 1/3 installed, 1 in progress, 1 failed (aa (n2)), 1 stalled (bb (n3))", false},
		{"done with a failure", api.Status{Total: 2, ByState: map[string]int{"installed": 1, "failed": 1}, Failed: []string{"aa"}},
			"[#####-----] 1/2 installed, 1 failed (aa)", true},
		{"all installed, a discovered stranger does not hold it up", api.Status{Total: 3, ByState: map[string]int{"installed": 2, "discovered": 1}},
			"[######----] 2/3 installed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := summarize(tc.st)
			if got := p.line(10); got != tc.want {
				t.Errorf("line = %q, want %q", got, tc.want)
			}
			if p.done() != tc.done {
				t.Errorf("done = %v, want %v", p.done(), tc.done)
			}
		})
	}
}
