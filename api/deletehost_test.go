package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
)

// DELETE /hosts/MAC with the MAC of another host's other NIC is refused
// (409, naming the host) and deletes nothing; the host's own MAC deletes
// it.
func TestDeleteHostByOtherNIC(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge", OtherMACs: []string{"52:54:00:aa:00:99"}})
	msg := wantError(t, e.op(http.MethodDelete, "/hosts/52:54:00:aa:00:99", ""), http.StatusConflict, "conflict")
	if !strings.Contains(msg, mac1+" (node1)") {
		t.Errorf("refusal %q does not name the host", msg)
	}
	if hs := e.hosts(); len(hs) != 1 || hs[0].MAC != mac1 {
		t.Fatalf("hosts after the refused delete: %+v", hs)
	}
	if r := e.op(http.MethodDelete, "/hosts/"+mac1, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete by the host's own MAC: %d %s", r.status, r.body)
	}
	if hs := e.hosts(); len(hs) != 0 {
		t.Fatalf("hosts after delete: %+v", hs)
	}
}
