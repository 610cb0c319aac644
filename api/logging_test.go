package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/internal/testbuf"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// TestLogsCarryNoSecrets captures everything the server and the store log
// at debug level through a full install, with the failure paths a real
// rack produces (a fetch from the wrong address, dead tokens, a
// reprovision), and looks for the site secret, a user's password, the
// install tokens and the operator token.
func TestLogsCarryNoSecrets(t *testing.T) {
	var logs testbuf.Buffer
	const (
		secret = "SEKRET-edge-host-token-4711"
		passwd = "PASSWD-kairos-0815"
	)
	e := newEnv(t, func(c *api.Config) {
		c.Log = zerolog.New(&logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
		c.Unknown, c.UnknownProfile = ipxe.UnknownProfile, "edge"
		c.BindUserDataToIP = true
	})

	// The operator enrols the host with its secrets, and previews it.
	overrides, _ := json.Marshal("stages:\n  initramfs:\n    - users:\n        kairos:\n          passwd: " + passwd + "\n")
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"`+mac1+`","name":"node1","profile":"edge","site":{"edgeHostToken":"`+secret+`"},"userdata":`+string(overrides)+`}`, http.StatusCreated, nil)
	if r := e.op(http.MethodGet, "/hosts/"+mac1+"/userdata?secrets=true", ""); !strings.Contains(r.text(), secret) || !strings.Contains(r.text(), passwd) {
		t.Fatalf("preview with secrets: %s", r.body)
	}
	e.op(http.MethodGet, "/hosts/"+mac1+"/userdata", "")
	e.request(http.MethodGet, "/api/v1/hosts?token="+testToken, nil, nil)

	// The machine boots.
	e.get("/boot.ipxe")
	e.get("/ipxe?mac=" + mac1 + "&serial=" + strings.Repeat("x", 300)) // refused, logged at debug
	_, tok := e.stage2(query1)
	if tok == "" {
		t.Fatal("no install script")
	}
	e.get("/artifacts/edge/kernel")
	e.get("/tftp/snponly.efi")
	e.get("/tftp/missing.efi")
	wantTerse(t, e.getFrom(otherIP, "/userdata/"+tok), http.StatusForbidden)
	r := e.get("/userdata/" + tok)
	if !strings.Contains(r.text(), secret) || !strings.Contains(r.text(), passwd) {
		t.Fatalf("the installer's user-data lacks the host's secrets:\n%s", r.body)
	}
	e.get("/userdata/" + tok + "x")
	e.post("/callback/"+tok+"x/done", "")
	decodeCallback(t, e.post("/callback/"+tok+"/done", ""))
	decodeCallback(t, e.post("/callback/"+tok+"/done", "")) // repeated
	wantTerse(t, e.get("/userdata/"+tok), http.StatusGone)
	e.stage2(query1) // local boot
	e.opJSON(http.MethodPost, "/hosts/"+mac1+"/reprovision", "", http.StatusOK, nil)
	wantTerse(t, e.post("/callback/"+tok+"/done", ""), http.StatusGone)

	// A second host enrolled by the default profile is reprovisioned
	// mid-install, then fails its next attempt.
	_, rotated := e.stage2("mac=52-54-00-aa-00-02")
	e.opJSON(http.MethodPost, "/hosts/52:54:00:aa:00:02/reprovision", "", http.StatusOK, nil)
	_, tok2 := e.stage2("mac=52-54-00-aa-00-02")
	wantTerse(t, e.get("/userdata/"+rotated), http.StatusGone)
	wantTerse(t, e.post("/callback/"+rotated+"/failed", "stale"), http.StatusGone)
	e.get("/userdata/" + tok2)
	e.post("/callback/"+tok2+"/failed", "installer: wrong "+secret+" rejected by Palette")

	e.srv.Close() // all handlers done before reading the buffer
	out := logs.String()
	for _, want := range []string{"user-data served", "bad stage-2 query", "machine request refused", `"route":"/userdata/{token}"`,
		`"route":"/callback/{token}/{result:done|failed}"`, "the attempt is bound to 127.0.0.1", "is over"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the capture missed the flow's log line with %q:\n%s", want, out)
		}
	}
	t.Logf("%d bytes of logs captured", len(out))
	for name, s := range map[string]string{
		"edgeHostToken":       secret,
		"stages passwd":       passwd,
		"install token":       tok,
		"second token":        tok2,
		"rotated token":       rotated,
		"rotated token hash":  hashHex(rotated),
		"install token hash":  hashHex(tok),
		"operator API token":  testToken,
		"token's first bytes": tok[:12],
	} {
		if strings.Contains(out, s) {
			t.Errorf("logs contain the %s:\n%s", name, out)
		}
	}
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
