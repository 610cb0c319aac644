package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// Guessing tokens: after Burst failures an address gets 429 and the
// store is unchanged, the attempts are counted in /metrics, and a real
// installer at another address is unaffected.
func TestTokenBruteForceIsLimited(t *testing.T) {
	now := time.Now()
	e := newEnv(t, func(c *api.Config) {
		c.TokenLimit = api.LimitPolicy{Burst: 5, Every: time.Minute}
		c.Now = func() time.Time { return now }
	})
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	_, tok := e.stage2("mac=" + mac1)
	before := e.hosts()

	codes := map[int]int{}
	for i := 0; i < 12; i++ {
		path := "/userdata/guess" + strings.Repeat("x", i)
		if i%2 == 1 {
			r := e.post("/callback/guess"+strings.Repeat("y", i)+"/done", "")
			codes[r.status]++
			continue
		}
		codes[e.get(path).status]++
	}
	if codes[http.StatusNotFound] != 5 || codes[http.StatusTooManyRequests] != 7 {
		t.Fatalf("12 guesses from one address: %v, want 5×404 then 7×429", codes)
	}
	e.unchanged(before)

	// The same address after the budget refills (one per minute).
	now = now.Add(time.Minute)
	if r := e.get("/userdata/" + tok); r.status != http.StatusOK {
		t.Fatalf("real token after a refill: %d %s", r.status, r.body)
	}
	m := string(e.request(http.MethodGet, "/metrics", nil, bearer).body)
	for _, want := range []string{"stagehand_token_failures_total 5\n", "stagehand_token_ratelimited_total 7\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
