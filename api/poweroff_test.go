package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
)

// A host whose user-data says poweroff: maybe is refused when stored, and
// the error names the host, the field and the reason; one that says
// poweroff: false keeps it in what its installer is served.
func TestHostPowerOffValidated(t *testing.T) {
	e := newEnv(t, nil)
	before := e.hosts()
	body, _ := json.Marshal(map[string]any{"mac": mac1, "name": "node1", "profile": "edge", "userdata": "install:\n  poweroff: maybe\n"})
	msg := wantError(t, e.op(http.MethodPost, "/hosts", string(body)), http.StatusBadRequest, "validation")
	for _, want := range []string{mac1, "install.poweroff", `must be true or false, not "maybe"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	e.unchanged(before)

	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge", UserData: "install:\n  poweroff: false\n"})
	_, tok := e.stage2("mac=" + mac1)
	r := e.get("/userdata/" + tok)
	if r.status != http.StatusOK || !strings.Contains(r.text(), "poweroff: false") || strings.Contains(r.text(), "poweroff: true") {
		t.Fatalf("user-data with an explicit poweroff: false: %d\n%s", r.status, r.body)
	}
}
