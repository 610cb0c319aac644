package api_test

import (
	"net/http"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
)

// Every 405 names the methods the path accepts (RFC 9110 §15.5.6), on
// the machine routes and the operator API alike.
func TestMethodNotAllowedAllow(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	tests := []struct {
		method, path string
		allow        string
	}{
		{http.MethodPost, "/boot.ipxe", "GET, HEAD"},
		{http.MethodPost, "/ipxe?mac=" + mac1, "GET"},
		{http.MethodDelete, "/artifacts/edge/kernel", "GET, HEAD"},
		{http.MethodPut, "/tftp/undionly.kpxe", "GET, HEAD"},
		{http.MethodPost, "/userdata/sometoken", "GET"},
		{http.MethodGet, "/callback/sometoken/done", "POST"},
		{http.MethodPut, "/callback/sometoken/failed", "POST"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodPost, "/metrics", "GET"},
		{http.MethodDelete, "/api/v1/hosts", "GET, POST"},
		{http.MethodGet, "/api/v1/hosts/import", "POST"},
		{http.MethodPost, "/api/v1/hosts/export", "GET"},
		{http.MethodDelete, "/api/v1/hosts/reprovision", "POST"},
		{http.MethodGet, "/api/v1/hosts/assign", "POST"},
		{http.MethodPost, "/api/v1/hosts/" + mac1, "GET, PUT, DELETE, PATCH"},
		{http.MethodGet, "/api/v1/hosts/" + mac1 + "/reprovision", "POST"},
		{http.MethodDelete, "/api/v1/hosts/" + mac1 + "/events", "GET"},
		{http.MethodDelete, "/api/v1/profiles", "GET, POST"},
		{http.MethodPost, "/api/v1/profiles/edge", "GET, PUT, DELETE, PATCH"},
		{http.MethodPut, "/api/v1/status", "GET"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.request(tc.method, tc.path, nil, bearer)
			wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}
