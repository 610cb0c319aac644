package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// A rack behind NAT: every host and a guesser share one address. The
// guesser exhausts the address's failure budget; from then on every
// guess gets 429, while every host's valid user-data fetch and done
// callback is still answered.
func TestTokenLimitNeverRefusesAValidToken(t *testing.T) {
	now := time.Now()
	e := newEnv(t, func(c *api.Config) {
		c.TokenLimit = api.LimitPolicy{Burst: 5, Every: time.Hour}
		c.Now = func() time.Time { return now }
	})
	const hosts = 8
	tokens := make([]string, hosts)
	macs := make([]string, hosts)
	for i := range tokens {
		macs[i] = fmt.Sprintf("52:54:00:aa:00:%02x", i+1)
		e.addHost(inventory.Host{MAC: macs[i], Name: fmt.Sprintf("rack-node%02d", i+1), Profile: "edge"})
		_, tokens[i] = e.stage2("mac=" + macs[i])
		if tokens[i] == "" {
			t.Fatalf("host %s got no install token", macs[i])
		}
	}

	guess := func(i int) int {
		if i%2 == 0 {
			return e.get(fmt.Sprintf("/userdata/guess-%d", i)).status
		}
		return e.post(fmt.Sprintf("/callback/guess-%d/done", i), "").status
	}
	for i := 0; i < 5; i++ {
		if got := guess(i); got != http.StatusNotFound {
			t.Fatalf("guess %d within the budget: %d, want 404", i, got)
		}
	}
	if got := guess(5); got != http.StatusTooManyRequests {
		t.Fatalf("guess past the budget: %d, want 429", got)
	}

	for i := range tokens {
		r := e.get("/userdata/" + tokens[i])
		if r.status != http.StatusOK || len(r.body) == 0 {
			t.Fatalf("host %s: valid user-data fetch under the address's penalty: %d %s", macs[i], r.status, r.body)
		}
		if got := guess(100 + i); got != http.StatusTooManyRequests {
			t.Fatalf("guess between valid requests: %d, want 429", got)
		}
		r = e.post("/callback/"+tokens[i]+"/done", "")
		if r.status != http.StatusOK {
			t.Fatalf("host %s: valid done callback under the address's penalty: %d %s", macs[i], r.status, r.body)
		}
		if st := e.host(macs[i]).State; st != inventory.StateInstalled {
			t.Fatalf("host %s is %s after its done callback, want installed", macs[i], st)
		}
	}
	// A repeated done is still a valid token's answer (200, unchanged).
	if r := e.post("/callback/"+tokens[0]+"/done", ""); r.status != http.StatusOK {
		t.Fatalf("repeated done under the penalty: %d %s", r.status, r.body)
	}
	// A token whose attempt is over is a failure like a guess: refused.
	if _, err := e.store.Reprovision(macs[1]); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/userdata/" + tokens[1]); r.status != http.StatusTooManyRequests {
		t.Fatalf("retired token under the penalty: %d, want 429", r.status)
	}
	m := string(e.request(http.MethodGet, "/metrics", nil, bearer).body)
	for _, want := range []string{"stagehand_token_failures_total 5\n", fmt.Sprintf("stagehand_token_ratelimited_total %d\n", 1+hosts+1)} {
		if !strings.Contains("\n"+m, "\n"+want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
