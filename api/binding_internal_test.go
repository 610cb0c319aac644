package api

import (
	"fmt"
	"testing"
	"time"
)

// TestRefusalLogBound: a flood of distinct addresses never holds more
// than maxRefusals entries; stale entries go first, and when every entry
// is recent, all go.
func TestRefusalLogBound(t *testing.T) {
	var l refusalLog
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	for i := range maxRefusals {
		if !l.first("m", fmt.Sprint(i), t0) {
			t.Fatalf("address %d: not first", i)
		}
	}
	if l.first("m", "0", t0) {
		t.Fatal("a repeat within the window was recorded again")
	}
	// Full of recent entries: the next new one clears them all.
	if !l.first("m", "new", t0) || l.last.Len() != 1 {
		t.Fatalf("past the bound: %d entries, want 1", l.last.Len())
	}
	// Full again, half of it stale: only the stale half goes.
	for i := range maxRefusals - 1 {
		at := t0
		if i%2 == 0 {
			at = t0.Add(refusalWindow)
		}
		l.first("m", fmt.Sprint("b", i), at)
	}
	if !l.first("m", "last", t0.Add(refusalWindow)) || l.last.Len() > maxRefusals/2+2 {
		t.Fatalf("after evicting the stale half: %d entries", l.last.Len())
	}
}
