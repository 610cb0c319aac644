package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Metrics = func(mw *metrics.Writer) { mw.Counter("stagehand_test_extra_total", "From serve.", nil, 7) }
	})
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	_, tok := e.stage2("mac=" + mac1)
	e.get("/userdata/" + tok)
	e.post("/callback/"+tok+"/done", "")
	e.get("/userdata/no-such-token")

	if r := e.get("/metrics"); r.status != http.StatusUnauthorized {
		t.Fatalf("/metrics without the bearer token: %d", r.status)
	}
	r := e.request(http.MethodGet, "/metrics", nil, bearer)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	body := string(r.body)
	for _, want := range []string{
		`stagehand_hosts{state="installed"} 1`,
		`stagehand_install_duration_seconds_count 1`,
		`stagehand_http_requests_total{route="/ipxe",code="200"} 1`,
		`stagehand_http_requests_total{route="/userdata/{token}",code="200"} 1`,
		`stagehand_http_requests_total{route="/userdata/{token}",code="404"} 1`,
		`stagehand_http_requests_total{route="/callback/{token}/{result:done|failed}",code="200"} 1`,
		`stagehand_test_extra_total 7`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Route templates, never raw paths: a token in a label would be a
	// secret in every scrape.
	if strings.Contains(body, tok) || strings.Contains(body, "no-such-token") {
		t.Errorf("metrics carry a raw path:\n%s", body)
	}
}

// The metrics middleware wraps every ResponseWriter; artifacts must still
// reach sendfile, which needs io.ReaderFrom on the writer.
func TestStatusWriterKeepsReaderFrom(t *testing.T) {
	var w http.ResponseWriter = api.NewStatusWriterForTest(nil)
	if _, ok := w.(io.ReaderFrom); !ok {
		t.Fatal("statusWriter does not implement io.ReaderFrom: artifact downloads would lose sendfile")
	}
}
