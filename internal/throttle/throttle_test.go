package throttle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	var e Every
	t0 := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {59 * time.Second, false}, {time.Minute, true}, {time.Minute + time.Second, false}, {3 * time.Minute, true}} {
		if got := e.Allow(t0.Add(c.at), time.Minute); got != c.want {
			t.Errorf("Allow at +%v = %v, want %v", c.at, got, c.want)
		}
	}
	// Concurrent callers at one instant: one is let through.
	var f Every
	var through atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if f.Allow(t0, time.Minute) {
				through.Add(1)
			}
		})
	}
	wg.Wait()
	if through.Load() != 1 {
		t.Errorf("%d of 64 concurrent callers let through, want 1", through.Load())
	}
}
