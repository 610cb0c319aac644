package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// Discovery stops at its bounds: past them a new MAC gets the wait
// script and no record, and the refusal is counted by reason.
func TestDiscoverBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  api.DiscoverLimit
		reason string
	}{
		{"per address", api.DiscoverLimit{Max: -1, PerAddress: 3}, "address"},
		{"total", api.DiscoverLimit{Max: 3, PerAddress: -1}, "total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *api.Config) { c.Unknown, c.Discover = ipxe.UnknownDiscover, tc.limit })
			for i := range 5 {
				script, _ := e.stage2(fmt.Sprintf("mac=02:00:00:00:00:%02x&serial=S%d", i, i))
				if !strings.Contains(script, "chain --autofree "+e.base+"/boot.ipxe") {
					t.Fatalf("request %d: not the wait script:\n%s", i, script)
				}
			}
			if hs := e.hosts(); len(hs) != 3 {
				t.Fatalf("%d discovered records, want the bound 3", len(hs))
			}
			body := string(e.request(http.MethodGet, "/metrics", nil, bearer).body)
			if want := fmt.Sprintf(`stagehand_discovery_refused_total{reason=%q} 2`, tc.reason); !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}

// A bulk assign of a profile whose user-data carries secrets to
// discovered hosts needs confirm: without it, 409 names the hosts and
// nothing changes. A profile without secrets needs none.
func TestAssignSecretsNeedsConfirm(t *testing.T) {
	e := newEnv(t, nil)
	p, err := e.store.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	p.Name = "secret"
	p.UserData = strings.Replace(baseUD, "    paletteEndpoint:", "    edgeHostToken: c2VjcmV0LXRva2Vu\n    paletteEndpoint:", 1)
	if err := e.store.PutProfile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Discover("02:00:00:00:01:01", "10.0.0.66", inventory.Facts{Serial: "SQUAT"}, 0); err != nil {
		t.Fatal(err)
	}
	before := e.hosts()
	msg := wantError(t, e.op(http.MethodPost, "/hosts/assign?state=discovered", `{"profile":"secret"}`), http.StatusConflict, "confirm")
	if !strings.Contains(msg, "02:00:00:00:01:01") || !strings.Contains(msg, "SQUAT") {
		t.Errorf("the refusal does not list the discovered host: %s", msg)
	}
	e.unchanged(before)
	var res api.BulkResult
	e.opJSON(http.MethodPost, "/hosts/assign?state=discovered", `{"profile":"secret","confirm":true}`, http.StatusOK, &res)
	if len(res.Changed) != 1 || e.host("02:00:00:00:01:01").Profile != "secret" {
		t.Fatalf("confirmed assign: %+v", res)
	}
	if _, err := e.store.Discover("02:00:00:00:01:02", "10.0.0.66", inventory.Facts{}, 0); err != nil {
		t.Fatal(err)
	}
	e.opJSON(http.MethodPost, "/hosts/assign?state=discovered", `{"profile":"edge"}`, http.StatusOK, &res)
	if len(res.Changed) != 1 {
		t.Fatalf("assign of a profile without secrets: %+v", res)
	}
}
