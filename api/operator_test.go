package api_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

func TestOperatorAuth(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	tests := []struct {
		name string
		path string
		hdr  map[string]string
	}{
		{"no token", "/api/v1/hosts", nil},
		{"wrong token", "/api/v1/hosts", map[string]string{"Authorization": "Bearer wrong"}},
		{"token prefix", "/api/v1/hosts", map[string]string{"Authorization": "Bearer " + testToken[:len(testToken)-1]}},
		{"token with suffix", "/api/v1/hosts", map[string]string{"Authorization": "Bearer " + testToken + "x"}},
		{"no scheme", "/api/v1/hosts", map[string]string{"Authorization": testToken}},
		{"basic", "/api/v1/hosts", map[string]string{"Authorization": "Basic " + testToken}},
		{"right token in the query", "/api/v1/hosts?token=" + testToken, nil},
		{"right token as access_token", "/api/v1/status?access_token=" + testToken, nil},
		// Even with the right header: the URL already leaked the token somewhere.
		{"query token beside a right header", "/api/v1/hosts?token=" + testToken, bearer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.request(http.MethodGet, tc.path, nil, tc.hdr)
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
			if strings.Contains(r.text(), mac1) {
				t.Fatalf("401 leaked data: %s", r.body)
			}
		})
	}
	if r := e.request(http.MethodGet, "/api/v1/hosts", nil, nil); r.header.Get("WWW-Authenticate") != `Bearer realm="stagehand"` {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	// Unauthenticated writes change nothing.
	before := e.hosts()
	wantError(t, e.request(http.MethodDelete, "/api/v1/hosts/"+mac1, nil, nil), http.StatusUnauthorized, "unauthorized")
	wantError(t, e.request(http.MethodPost, "/api/v1/hosts/"+mac1+"/reprovision", nil, map[string]string{"Authorization": "Bearer nope"}), http.StatusUnauthorized, "unauthorized")
	e.unchanged(before)

	var hs []inventory.Host
	e.opJSON(http.MethodGet, "/hosts", "", http.StatusOK, &hs)
	if len(hs) != 1 || hs[0].MAC != mac1 {
		t.Fatalf("hosts with the right token: %+v", hs)
	}
}

// Every operator route, each method, refuses a request without the
// token and changes nothing; a wrong method on an operator route is 405
// and an unknown path under /api/v1 is 404.
func TestOperatorRoutesNeedToken(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	before := e.hosts()
	for _, rt := range []struct{ method, path string }{
		{http.MethodGet, "/hosts"}, {http.MethodPost, "/hosts"},
		{http.MethodPost, "/hosts/import"}, {http.MethodGet, "/hosts/export"},
		{http.MethodPost, "/hosts/reprovision?all=true"}, {http.MethodPost, "/hosts/assign?all=true"},
		{http.MethodGet, "/hosts/" + mac1}, {http.MethodPatch, "/hosts/" + mac1}, {http.MethodPut, "/hosts/" + mac1},
		{http.MethodDelete, "/hosts/" + mac1}, {http.MethodPost, "/hosts/" + mac1 + "/reprovision"},
		{http.MethodGet, "/hosts/" + mac1 + "/events"}, {http.MethodGet, "/hosts/" + mac1 + "/userdata"},
		{http.MethodGet, "/hosts/" + mac1 + "/cidata.iso"},
		{http.MethodGet, "/profiles"}, {http.MethodPost, "/profiles"},
		{http.MethodGet, "/profiles/edge"}, {http.MethodPut, "/profiles/edge"}, {http.MethodDelete, "/profiles/edge"},
		{http.MethodGet, "/status"}, {http.MethodGet, "/backup"},
	} {
		r := e.request(rt.method, "/api/v1"+rt.path, strings.NewReader(`{"profile":"x"}`), nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d %s, want 401", rt.method, rt.path, r.status, r.body)
		}
	}
	e.unchanged(before)

	for _, rt := range []struct{ method, path string }{
		{http.MethodDelete, "/hosts"}, {http.MethodPut, "/hosts"}, {http.MethodPost, "/hosts/export"},
		{http.MethodPost, "/hosts/" + mac1}, {http.MethodDelete, "/status"}, {http.MethodGet, "/hosts/" + mac1 + "/reprovision"},
		// Collection actions are not MACs: not "400 bad MAC import".
		{http.MethodGet, "/hosts/import"}, {http.MethodDelete, "/hosts/export"},
		{http.MethodGet, "/hosts/reprovision"}, {http.MethodPut, "/hosts/assign"},
	} {
		wantError(t, e.op(rt.method, rt.path, ""), http.StatusMethodNotAllowed, "method_not_allowed")
	}
	wantError(t, e.op(http.MethodGet, "/nosuch", ""), http.StatusNotFound, "not_found")
	e.unchanged(before)
}

func TestEmptyTokenDisablesOperatorAPI(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Token = "" })
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}} {
		wantError(t, e.request(http.MethodGet, "/api/v1/status", nil, h), http.StatusUnauthorized, "unauthorized")
	}
}

func TestHostCRUD(t *testing.T) {
	e := newEnv(t, nil)

	var h inventory.Host
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"52-54-00-AA-00-01","name":"node1","serial":"SN1","profile":"edge",
		"site":{"network":{"type":"static","ipAddress":"10.1.0.11","mask":24,"gateway":"10.1.0.1"}},"userdata":"install:\n  device: /dev/sda\n"}`,
		http.StatusCreated, &h)
	if h.MAC != mac1 || h.Name != "node1" || h.State != inventory.StateReady || h.Site.Network == nil || h.Site.Network.Mask != "24" {
		t.Fatalf("created: %+v", h)
	}
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"52:54:00:aa:00:02"}`, http.StatusCreated, &h)
	if h.State != inventory.StateDiscovered {
		t.Fatalf("host without profile: %s", h.State)
	}

	e.opJSON(http.MethodGet, "/hosts/52-54-00-aa-00-01", "", http.StatusOK, &h)
	if h.Serial != "SN1" || h.UserData != "install:\n  device: /dev/sda\n" {
		t.Fatalf("get: %+v", h)
	}

	var hs []inventory.Host
	e.opJSON(http.MethodGet, "/hosts", "", http.StatusOK, &hs)
	if len(hs) != 2 {
		t.Fatalf("list: %+v", hs)
	}
	e.opJSON(http.MethodGet, "/hosts?state=discovered", "", http.StatusOK, &hs)
	if len(hs) != 1 || hs[0].MAC != "52:54:00:aa:00:02" {
		t.Fatalf("list state=discovered: %+v", hs)
	}
	e.opJSON(http.MethodGet, "/hosts?profile=edge", "", http.StatusOK, &hs)
	if len(hs) != 1 || hs[0].MAC != mac1 {
		t.Fatalf("list profile=edge: %+v", hs)
	}

	// PATCH changes only what the body names; assigning a profile readies a discovered host.
	e.opJSON(http.MethodPatch, "/hosts/"+mac1, `{"name":"node1b"}`, http.StatusOK, &h)
	if h.Name != "node1b" || h.Serial != "SN1" || h.Profile != "edge" {
		t.Fatalf("patch: %+v", h)
	}
	e.opJSON(http.MethodPut, "/hosts/52:54:00:aa:00:02", `{"profile":"edge","name":"node2"}`, http.StatusOK, &h)
	if h.State != inventory.StateReady || h.Name != "node2" {
		t.Fatalf("assign: %+v", h)
	}

	// The token hash never leaves the server.
	_, tok := e.stage2("mac=" + mac1)
	if tok == "" {
		t.Fatal("no install script")
	}
	for _, path := range []string{"/hosts", "/hosts/" + mac1} {
		if r := e.op(http.MethodGet, path, ""); strings.Contains(r.text(), "tokenHash") || strings.Contains(r.text(), tok) {
			t.Fatalf("GET %s exposes the token: %s", path, r.body)
		}
	}

	if r := e.op(http.MethodDelete, "/hosts/52-54-00-aa-00-02", ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, e.op(http.MethodGet, "/hosts/52:54:00:aa:00:02", ""), http.StatusNotFound, "not_found")
}

func TestHostRejectsLeaveStoreUnchanged(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "taken", Profile: "edge"})
	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:02"}) // discovered
	big := `{"mac":"52:54:00:aa:00:09","userdata":"` + strings.Repeat("a", 1<<20) + `"}`

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad MAC", "POST", "/hosts", `{"mac":"52:54:00:aa:00","profile":"edge"}`, 400, "validation"},
		{"no MAC", "POST", "/hosts", `{"profile":"edge"}`, 400, "validation"},
		{"malformed JSON", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09",`, 400, "bad_json"},
		{"not an object", "POST", "/hosts", `["52:54:00:aa:00:09"]`, 400, "bad_json"},
		{"unknown field", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09","profle":"edge"}`, 400, "bad_json"},
		{"two values", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09"} {"mac":"52:54:00:aa:00:0a"}`, 400, "bad_json"},
		{"wrong type", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09","name":7}`, 400, "bad_json"},
		{"unknown profile", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09","profile":"nope"}`, 400, "validation"},
		{"bad site network", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09","site":{"network":{"type":"static"}}}`, 400, "validation"},
		{"duplicate MAC", "POST", "/hosts", `{"mac":"52-54-00-AA-00-01","profile":"edge"}`, 409, "exists"},
		{"duplicate name", "POST", "/hosts", `{"mac":"52:54:00:aa:00:09","name":"taken","profile":"edge"}`, 409, "exists"},
		{"body over 1 MiB", "POST", "/hosts", big, 413, "too_large"},
		{"patch onto a taken name", "PATCH", "/hosts/52:54:00:aa:00:02", `{"name":"taken"}`, 409, "exists"},
		{"patch clears the profile of a ready host", "PATCH", "/hosts/" + mac1, `{"profile":""}`, 400, "validation"},
		{"patch unknown host", "PATCH", "/hosts/52:54:00:aa:00:99", `{"name":"x"}`, 404, "not_found"},
		{"patch malformed", "PATCH", "/hosts/" + mac1, `{"name":`, 400, "bad_json"},
		{"patch unknown field", "PATCH", "/hosts/" + mac1, `{"state":"installed"}`, 400, "bad_json"},
		{"patch over 1 MiB", "PATCH", "/hosts/" + mac1, big, 413, "too_large"},
		{"patch bad MAC in path", "PATCH", "/hosts/zz", `{"name":"x"}`, 400, "validation"},
		{"get unknown", "GET", "/hosts/52:54:00:aa:00:99", "", 404, "not_found"},
		{"list bad state", "GET", "/hosts?state=bogus", "", 400, "validation"},
		{"delete unknown", "DELETE", "/hosts/52:54:00:aa:00:99", "", 404, "not_found"},
		{"reprovision discovered", "POST", "/hosts/52:54:00:aa:00:02/reprovision", "", 409, "conflict"},
		{"reprovision unknown", "POST", "/hosts/52:54:00:aa:00:99/reprovision", "", 404, "not_found"},
		{"events unknown", "GET", "/hosts/52:54:00:aa:00:99/events", "", 404, "not_found"},
		{"wrong method", "POST", "/hosts/" + mac1, "{}", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.hosts()
			msg := wantError(t, e.op(tc.method, tc.path, tc.body), tc.status, tc.code)
			e.unchanged(before)
			t.Logf("%d %s: %s", tc.status, tc.code, msg)
		})
	}
}

func TestProfileCRUD(t *testing.T) {
	e := newEnv(t, nil)
	edge, err := e.store.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	body := func(extra string) string {
		return `{"kernel":"` + edge.Kernel + `","initrd":"` + edge.Initrd + `"` + extra + `}`
	}

	var p inventory.Profile
	e.opJSON(http.MethodPut, "/profiles/small", body(`,"cmdline":"quiet","localBoot":"sanboot"`), http.StatusOK, &p)
	if p.Name != "small" || p.Local != inventory.LocalBootSanboot || p.Cmdline != "quiet" || p.CreatedAt.IsZero() {
		t.Fatalf("put: %+v", p)
	}
	e.opJSON(http.MethodPost, "/profiles", `{"name":"posted",`+body("")[1:], http.StatusOK, &p)
	if p.Name != "posted" || p.Local != inventory.LocalBootExit {
		t.Fatalf("post: %+v", p)
	}
	e.opJSON(http.MethodGet, "/profiles/small", "", http.StatusOK, &p)
	if p.Kernel != edge.Kernel {
		t.Fatalf("get: %+v", p)
	}
	var ps []inventory.Profile
	e.opJSON(http.MethodGet, "/profiles", "", http.StatusOK, &ps)
	if len(ps) != 3 {
		t.Fatalf("list: %+v", ps)
	}

	profiles := func() []inventory.Profile {
		ps, err := e.store.Profiles()
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, mention            string
	}{
		{"name mismatch", "PUT", "/profiles/small", `{"name":"other",` + body("")[1:], 400, "validation", "other"},
		{"missing kernel file", "PUT", "/profiles/small", `{"kernel":"` + filepath.Join(t.TempDir(), "none") + `","initrd":"` + edge.Initrd + `"}`, 400, "validation", "field kernel"},
		{"relative initrd", "PUT", "/profiles/small", `{"kernel":"` + edge.Kernel + `","initrd":"initrd.img"}`, 400, "validation", "field initrd"},
		{"bad local boot", "PUT", "/profiles/small", body(`,"localBoot":"pxe"`), 400, "validation", "localBoot"},
		{"bad name", "POST", "/profiles", `{"name":"a b",` + body("")[1:], 400, "validation", "field name"},
		{"bad base user-data", "PUT", "/profiles/small", body(`,"userdata":"stylus: [1"`), 400, "validation", "userdata"},
		{"unknown field", "PUT", "/profiles/small", body(`,"kernal":"/x"`), 400, "bad_json", "kernal"},
		{"get unknown", "GET", "/profiles/nope", "", 404, "not_found", "nope"},
		{"delete unknown", "DELETE", "/profiles/nope", "", 404, "not_found", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := profiles()
			msg := wantError(t, e.op(tc.method, tc.path, tc.body), tc.status, tc.code)
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q does not mention %q", msg, tc.mention)
			}
			if after := profiles(); !reflect.DeepEqual(before, after) {
				t.Fatalf("profiles changed:\n%+v\n%+v", before, after)
			}
		})
	}

	// The "small" profile has no base user-data: the host brings its endpoint.
	e.addHost(inventory.Host{MAC: mac1, Profile: "small", Site: userdata.Site{PaletteEndpoint: "api.example.com"}})
	msg := wantError(t, e.op(http.MethodDelete, "/profiles/small", ""), http.StatusConflict, "conflict")
	if !strings.Contains(msg, mac1) {
		t.Errorf("conflict message %q does not name the host", msg)
	}
	if r := e.op(http.MethodDelete, "/profiles/posted", ""); r.status != http.StatusNoContent {
		t.Fatalf("delete unused: %d %s", r.status, r.body)
	}
	wantError(t, e.op(http.MethodGet, "/profiles/posted", ""), http.StatusNotFound, "not_found")
}

func TestReprovisionAndEvents(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})

	var ev []inventory.Event
	e.opJSON(http.MethodGet, "/hosts/"+mac1+"/events", "", http.StatusOK, &ev)
	if len(ev) != 1 || ev[0].Kind != "created" {
		t.Fatalf("events of a new host: %+v", ev)
	}

	_, tok := e.stage2("mac=" + mac1)
	e.get("/userdata/" + tok)
	decodeCallback(t, e.post("/callback/"+tok+"/done", ""))

	var h inventory.Host
	e.opJSON(http.MethodPost, "/hosts/"+mac1+"/reprovision", "", http.StatusOK, &h)
	if h.State != inventory.StateReady || h.Attempt != 1 {
		t.Fatalf("reprovisioned: %+v", h)
	}
	// The attempt ended with the reprovision; the refusal's event goes
	// through the recorder.
	wantTerse(t, e.post("/callback/"+tok+"/done", ""), http.StatusGone)
	e.flush()
	_, tok2 := e.stage2("mac=" + mac1)
	if tok2 == "" || e.host(mac1).Attempt != 2 {
		t.Fatalf("after reprovision: token %q, attempt %d", tok2, e.host(mac1).Attempt)
	}

	e.opJSON(http.MethodGet, "/hosts/"+mac1+"/events", "", http.StatusOK, &ev)
	var got []string
	for _, x := range ev {
		got = append(got, x.Kind)
	}
	want := []string{"created", "script", "booting", "userdata", "installed", "reprovision", "callback-refused", "script", "booting"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v\nwant     %v", got, want)
	}
	if ev[5].Detail != "from installed" || !strings.Contains(ev[6].Detail, "gone: attempt 1") || ev[8].Attempt != 2 {
		t.Fatalf("reprovision event %+v, refusal %+v, last %+v", ev[5], ev[6], ev[8])
	}
}

func TestUserDataPreview(t *testing.T) {
	e := newEnv(t, nil)
	const secret = "SEKRET-preview-0123456789"
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge",
		Site: userdata.Site{EdgeHostToken: secret, Tags: map[string]string{"row": "7"}}})

	r := e.op(http.MethodGet, "/hosts/"+mac1+"/userdata", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.text(), "#cloud-config\n") {
		t.Fatalf("preview: %d %s", r.status, r.body)
	}
	if strings.Contains(r.text(), secret) || !strings.Contains(r.text(), "edgeHostToken: '********'") && !strings.Contains(r.text(), `edgeHostToken: "********"`) {
		t.Fatalf("preview does not mask edgeHostToken:\n%s", r.body)
	}
	for _, want := range []string{"name: node1", "row: \"7\"", e.base + "/callback/TOKEN/done"} {
		if !strings.Contains(r.text(), want) {
			t.Errorf("preview lacks %q:\n%s", want, r.body)
		}
	}
	if r := e.op(http.MethodGet, "/hosts/"+mac1+"/userdata?secrets=true", ""); r.status != http.StatusOK || !strings.Contains(r.text(), secret) {
		t.Fatalf("preview with secrets=true: %d\n%s", r.status, r.body)
	}
	if r := e.op(http.MethodGet, "/hosts/"+mac1+"/userdata?secrets=1", ""); strings.Contains(r.text(), secret) {
		t.Fatal("secrets=1 is not secrets=true, but the secret was shown")
	}
	// A preview is not an install attempt.
	if h := e.host(mac1); h.State != inventory.StateReady || h.Attempt != 0 {
		t.Fatalf("preview moved the host: %+v", h)
	}

	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:02"})
	wantError(t, e.op(http.MethodGet, "/hosts/52:54:00:aa:00:02/userdata", ""), http.StatusNotFound, "not_found")
	wantError(t, e.op(http.MethodGet, "/hosts/52:54:00:aa:00:99/userdata", ""), http.StatusNotFound, "not_found")
}

func TestStatus(t *testing.T) {
	e := newEnv(t, nil)
	var st api.Status
	e.opJSON(http.MethodGet, "/status", "", http.StatusOK, &st)
	if st.Total != 0 || len(st.ByState) != 0 {
		t.Fatalf("empty status: %+v", st)
	}
	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:01", Profile: "edge"})
	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:02", Profile: "edge"})
	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:03", Profile: "edge"})
	e.addHost(inventory.Host{MAC: "52:54:00:aa:00:04"})
	e.stage2("mac=52:54:00:aa:00:02")
	_, tok3 := e.stage2("mac=52:54:00:aa:00:03")
	e.get("/userdata/" + tok3)
	decodeCallback(t, e.post("/callback/"+tok3+"/done", ""))

	r := e.op(http.MethodGet, "/status", "")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 5 {
		t.Fatalf("status body %s: %v", r.body, err)
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	booting, err := e.store.Host("52:54:00:aa:00:02")
	if err != nil {
		t.Fatal(err)
	}
	// The booting host's attempt stalls an install timeout after it began:
	// the instant a watcher wakes at, with no event to announce it.
	want := api.Status{Total: 4, ByState: map[string]int{"ready": 1, "booting": 1, "installed": 1, "discovered": 1},
		Stalled: []string{}, Failed: []string{}, NextStall: booting.BootAt.Add(inventory.DefaultInstallTimeout)}
	if !st.NextStall.Equal(want.NextStall) {
		t.Fatalf("nextStall = %v, want %v", st.NextStall, want.NextStall)
	}
	st.NextStall = want.NextStall // same instant; the JSON round trip drops the monotonic reading
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status = %+v, want %+v", st, want)
	}
}
