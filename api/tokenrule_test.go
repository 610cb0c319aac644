package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/iso9660"
)

// seedToken fetches a NoCloud seed of mac and returns the token in its
// user-data's callback.
func seedToken(t *testing.T, e *env, mac string) string {
	t.Helper()
	r := e.op(http.MethodGet, "/hosts/"+mac+"/cidata.iso", "")
	if r.status != http.StatusOK {
		t.Fatalf("cidata: %d %s", r.status, r.body)
	}
	rd := bytes.NewReader(r.body)
	im, err := iso9660.Open(rd, int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	m := callbackDone.FindStringSubmatch(isoFile(t, im, rd, "/user-data"))
	if m == nil {
		t.Fatal("no callback in the seed's user-data")
	}
	return m[2]
}

// The token rule: the same live attempt keeps its token until it ends or
// an operator reprovisions. A second seed of a live attempt carries the
// first one's token, so the installer booted from the first seed gets
// its user-data and is heard when it calls back; a reprovision ends the
// attempt, and its token is gone.
func TestCIDataTwiceKeepsToken(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: rk1, Name: "node1", Profile: "edge"})
	first := seedToken(t, e, rk1)
	second := seedToken(t, e, rk1)
	if second != first {
		t.Fatalf("second seed of the live attempt carries another token")
	}
	if r := e.get("/userdata/" + first); r.status != http.StatusOK {
		t.Fatalf("user-data with the first seed's token: %d %s", r.status, r.body)
	}
	if r := e.post("/callback/"+first+"/done", ""); r.status != http.StatusOK {
		t.Fatalf("done with the first seed's token: %d %s", r.status, r.body)
	}
	if h := e.host(rk1); h.State != inventory.StateInstalled || h.Attempt != 1 {
		t.Fatalf("after done: %s, attempt %d", h.State, h.Attempt)
	}

	e.opJSON(http.MethodPost, "/hosts/"+rk1+"/reprovision", "", http.StatusOK, nil)
	third := seedToken(t, e, rk1)
	if third == first {
		t.Fatal("the new attempt after reprovision reuses the old token")
	}
	wantTerse(t, e.get("/userdata/"+first), http.StatusGone)
	wantTerse(t, e.post("/callback/"+first+"/done", ""), http.StatusGone)
	if r := e.get("/userdata/" + third); r.status != http.StatusOK {
		t.Fatalf("user-data with the new attempt's token: %d %s", r.status, r.body)
	}
}
