package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// FuzzOperatorJSON sends arbitrary bodies to the operator API's JSON
// routes. Whatever arrives, the answer is a success or a 4xx with the
// stable error shape — never a 500 or a panic — and a refused request
// leaves the store as it was.
func FuzzOperatorJSON(f *testing.F) {
	for _, s := range []string{
		`{"mac":"52:54:00:00:00:01","name":"n1","profile":"edge"}`,
		`{"mac":"52:54:00:00:00:02","site":{"paletteEndpoint":"a.example","network":{"type":"static","ipAddress":"10.0.0.5","mask":24,"gateway":"10.0.0.1"}}}`,
		`{"mac":"52:54:00:00:00:03","site":{"tags":{"a":"b"}},"userdata":"stylus: [1"}`,
		`{"mac":1}`, `[]`, `{"mac":"x"}{"mac":"y"}`, `{"kernal":"/x"}`, ``, `null`,
		`{"name":"p2","kernel":"/nonexistent","initrd":"/nonexistent"}`,
		`{"mac":"52:54:00:00:00:04","profile":"edge","otherMACs":["52:54:00:00:00:f4","52-54-00-00-00-F5"]}`,
		`{"otherMACs":["52:54:00:00:00:01"]}`, `{"otherMACs":"x"}`,
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	st, err := inventory.Open(filepath.Join(dir, "data"), inventory.Options{LockTimeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv := api.New(api.Config{Store: st, Token: testToken, Base: "http://127.0.0.1:8080", Log: zerolog.Nop()})
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []struct{ method, path string }{
			{http.MethodPost, "/api/v1/hosts"},
			{http.MethodPatch, "/api/v1/hosts/52:54:00:00:00:01"},
			{http.MethodPut, "/api/v1/profiles/p2"},
			{http.MethodPost, "/api/v1/hosts/assign?state=discovered"},
		} {
			before, _ := st.Hosts(inventory.Filter{})
			profiles, _ := st.Profiles()
			req := httptest.NewRequest(route.method, route.path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", route.method, route.path, body, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var e api.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("%s %s: error body %q is not the stable shape", route.method, route.path, rec.Body)
				}
				after, _ := st.Hosts(inventory.Filter{})
				afterP, _ := st.Profiles()
				if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterP, profiles) {
					t.Fatalf("%s %s refused with %d but the store changed", route.method, route.path, rec.Code)
				}
			}
		}
	})
}
