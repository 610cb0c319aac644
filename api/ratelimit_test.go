package api

import (
	"testing"
	"time"
)

func TestLimitPolicyAllow(t *testing.T) {
	p := LimitPolicy{Burst: 3, Every: 10 * time.Second}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		b    failureBudget
		now  time.Time
		ok   bool
		left float64
	}{
		{"new address gets the full burst", failureBudget{}, t0, true, 3},
		{"one left", failureBudget{tokens: 1, last: t0}, t0, true, 1},
		{"spent", failureBudget{tokens: 0.5, last: t0}, t0, false, 0.5},
		{"refills one per Every", failureBudget{tokens: 0, last: t0}, t0.Add(10 * time.Second), true, 1},
		{"refill caps at the burst", failureBudget{tokens: 0, last: t0}, t0.Add(time.Hour), true, 3},
		{"clock going backwards refills nothing", failureBudget{tokens: 0, last: t0}, t0.Add(-time.Minute), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := p.allow(tc.b, tc.now)
			if ok != tc.ok || b.tokens != tc.left {
				t.Fatalf("allow = %v with %.2f left, want %v with %.2f", ok, b.tokens, tc.ok, tc.left)
			}
		})
	}
}

func TestTokenLimiterBoundsMemory(t *testing.T) {
	now := time.Unix(0, 0)
	l := newTokenLimiter(LimitPolicy{}, func() time.Time { return now })
	for i := 0; i < maxLimited+100; i++ {
		l.charge(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if len(l.byIP) != maxLimited || len(l.order) != maxLimited {
		t.Fatalf("limiter holds %d/%d addresses, want %d", len(l.byIP), len(l.order), maxLimited)
	}
}
