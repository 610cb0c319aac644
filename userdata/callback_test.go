package userdata

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestCallbackCommandRealClients runs the injected after-install command
// through /bin/sh with real curl, and with only busybox wget on PATH (the
// fallback for images without curl), against a loopback HTTP server.
// Needs Debian packages curl and busybox-static.
func TestCallbackCommandRealClients(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl not found (apt-get install curl): %v", err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found (apt-get install busybox-static): %v", err)
	}

	// Only wget on this PATH: curl is "not found", so the || branch runs.
	wgetOnly := t.TempDir()
	if err := os.Symlink(busybox, filepath.Join(wgetOnly, "wget")); err != nil {
		t.Fatal(err)
	}
	curlOnly := t.TempDir()
	if err := os.Symlink(curl, filepath.Join(curlOnly, "curl")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, agent string
	}{
		{"curl", curlOnly, "curl/"},
		{"busybox wget", wgetOnly, "Wget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type hit struct{ method, path, agent string }
			var (
				mu   sync.Mutex
				hits []hit
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits = append(hits, hit{r.Method, r.URL.Path, r.UserAgent()})
				mu.Unlock()
				_, _ = w.Write([]byte("ok\n"))
			}))
			t.Cleanup(srv.Close)

			doc, err := Render(Input{
				Site:        Site{PaletteEndpoint: "api.spectrocloud.com"},
				HostName:    "edge-01",
				CallbackURL: srv.URL + "/callback/Tok-3f9a_01",
			})
			if err != nil {
				t.Fatal(err)
			}
			cmd := afterInstallCommand(t, doc)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sh := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
			sh.Env = []string{"PATH=" + tc.path}
			out, err := sh.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(hits) != 1 {
				t.Fatalf("server saw %d requests, want 1: %+v", len(hits), hits)
			}
			h := hits[0]
			if h.method != http.MethodPost || h.path != "/callback/Tok-3f9a_01/done" {
				t.Errorf("got %s %s, want POST /callback/Tok-3f9a_01/done", h.method, h.path)
			}
			if len(h.agent) < len(tc.agent) || h.agent[:len(tc.agent)] != tc.agent {
				t.Errorf("User-Agent %q, want the %s client (%q...)", h.agent, tc.name, tc.agent)
			}
		})
	}
}

// afterInstallCommand returns the single command of the injected step, read
// back through a YAML parser as the installer would.
func afterInstallCommand(t *testing.T, doc []byte) string {
	t.Helper()
	var d struct {
		Stages map[string][]struct {
			Name     string   `yaml:"name"`
			Commands []string `yaml:"commands"`
		} `yaml:"stages"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	steps := d.Stages["after-install"]
	if len(steps) == 0 {
		t.Fatalf("no after-install steps in:\n%s", doc)
	}
	last := steps[len(steps)-1]
	if last.Name != CallbackStepName || len(last.Commands) != 1 {
		t.Fatalf("last after-install step is %+v", last)
	}
	return last.Commands[0]
}
