package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

// TestHostSpecEveryField: every field of inventory.Fields has its JSON
// path in a host created through the API, and a PATCH naming one member
// sets exactly that member's fields.
func TestHostSpecEveryField(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"mac":"aa:bb:cc:00:00:01","name":"n1","serial":"S1","profile":"edge","userdata":"#cloud-config\n","dhcpAddress":"10.0.0.21",
	"otherMACs":["aa:bb:cc:00:01:01"],"site":{"paletteEndpoint":"p.example","registrationURL":"https://r.example","projectUid":"u1",
	"edgeHostToken":"tok","tags":{"a":"1"},"network":{"type":"static","ipAddress":"10.1.0.11","mask":"24","gateway":"10.1.0.1","nameserver":"10.1.0.2","httpProxy":"http://proxy:3128"}}}`
	var raw map[string]any
	e.opJSON(http.MethodPost, "/hosts", body, http.StatusCreated, &raw)
	h := e.host("aa:bb:cc:00:00:01")
	for _, f := range inventory.Fields {
		var v any = raw
		for _, k := range strings.Split(f.JSON, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if v == nil || f.Get(&h) == "" {
			t.Errorf("field %s: JSON path %s = %v, stored %q", f.Name, f.JSON, v, f.Get(&h))
		}
	}
	var spec api.HostSpec
	if err := json.Unmarshal([]byte(`{"serial":"S2"}`), &spec); err != nil {
		t.Fatal(err)
	}
	if _, set := spec.Fields(); len(set) != 1 || !set["serial"] {
		t.Errorf("a spec with serial sets %v", set)
	}
}

// TestExportFilters: export takes every filter list takes (stalled
// included) and carries secrets only with includeSecrets=1.
func TestExportFilters(t *testing.T) {
	// The store stamps the boot with the real clock; the API judges
	// stalls two hours later.
	e := newEnv(t, func(c *api.Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	e.addHost(inventory.Host{MAC: "aa:bb:cc:00:00:01", Profile: "edge", Site: userdata.Site{EdgeHostToken: "very-secret"}})
	e.addHost(inventory.Host{MAC: "aa:bb:cc:00:00:02", Profile: "edge"})
	if _, _, err := e.store.BeginInstall("aa:bb:cc:00:00:02", ""); err != nil {
		t.Fatal(err)
	}
	rows := func(q string) [][]string {
		t.Helper()
		r := e.op(http.MethodGet, "/hosts/export?format=csv"+q, "")
		if r.status != http.StatusOK {
			t.Fatalf("export%s: %d %s", q, r.status, r.body)
		}
		recs, err := csv.NewReader(strings.NewReader(r.text())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	var list []api.HostView
	e.opJSON(http.MethodGet, "/hosts?stalled=true", "", http.StatusOK, &list)
	if got := rows("&stalled=true"); len(list) != 1 || len(got) != 2 || got[1][0] != list[0].MAC {
		t.Errorf("export stalled=true: %q; list stalled=true: %d host(s)", got, len(list))
	}
	if got := rows("&state=booting"); len(got) != 2 || got[1][0] != "aa:bb:cc:00:00:02" {
		t.Errorf("export state=booting: %q", got)
	}
	if r := e.op(http.MethodGet, "/hosts/export?format=csv", ""); strings.Contains(r.text(), "very-secret") || strings.Contains(r.text(), "edgeHostToken") {
		t.Errorf("export without includeSecrets:\n%s", r.body)
	}
	if r := e.op(http.MethodGet, "/hosts/export?format=csv&includeSecrets=1", ""); !strings.Contains(r.text(), "very-secret") {
		t.Errorf("export with includeSecrets:\n%s", r.body)
	}
	wantError(t, e.op(http.MethodGet, "/hosts/export?includeSecrets=yes", ""), http.StatusBadRequest, "validation")
}

// TestProfileCreateRefusesExisting: POST /profiles on a name in use is
// 409 and leaves the profile whole; PATCH changes only what it names.
func TestProfileCreateRefusesExisting(t *testing.T) {
	e := newEnv(t, nil)
	edge, err := e.store.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	msg := wantError(t, e.op(http.MethodPost, "/profiles", `{"name":"edge","kernel":"`+edge.Kernel+`","initrd":"`+edge.Initrd+`"}`), http.StatusConflict, "exists")
	if !strings.Contains(msg, "edge") {
		t.Errorf("message %q does not name the profile", msg)
	}
	if p, _ := e.store.Profile("edge"); p.Cmdline != edge.Cmdline || p.UserData != edge.UserData {
		t.Fatalf("refused POST changed the profile: %+v", p)
	}
	var p inventory.Profile
	e.opJSON(http.MethodPatch, "/profiles/edge", `{"cmdline":"quiet"}`, http.StatusOK, &p)
	if p.Cmdline != "quiet" || p.UserData != edge.UserData || p.Kernel != edge.Kernel {
		t.Fatalf("PATCH cmdline: %+v", p)
	}
	wantError(t, e.op(http.MethodPatch, "/profiles/edge", `{"cmdlin":"x"}`), http.StatusBadRequest, "bad_json")
	wantError(t, e.op(http.MethodPatch, "/profiles/nope", `{"cmdline":"x"}`), http.StatusNotFound, "not_found")
}

// A PATCH of the site keeps values the manifest's text form cannot
// carry (a tag value with ";"), and a bad other MAC is refused, not
// dropped.
func TestHostSpecKeepsValues(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: "aa:bb:cc:00:00:01", Profile: "edge"})
	e.opJSON(http.MethodPatch, "/hosts/aa:bb:cc:00:00:01", `{"site":{"paletteEndpoint":"p.example","tags":{"zone":"a;b"}}}`, http.StatusOK, nil)
	if h := e.host("aa:bb:cc:00:00:01"); h.Site.Tags["zone"] != "a;b" {
		t.Fatalf("tags after PATCH: %v", h.Site.Tags)
	}
	before := e.hosts()
	wantError(t, e.op(http.MethodPatch, "/hosts/aa:bb:cc:00:00:01", `{"otherMACs":[""]}`), http.StatusBadRequest, "validation")
	e.unchanged(before)
}
