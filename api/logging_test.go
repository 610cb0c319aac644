package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// TestLogsCarryNoSecrets captures everything the server and the store log
// at debug level through a full install, with the failure paths a real
// rack produces, and looks for the site secret and the install token.
func TestLogsCarryNoSecrets(t *testing.T) {
	var logs lockedBuffer
	const secret = "SEKRET-edge-host-token-4711"
	e := newEnv(t, func(c *api.Config) {
		c.Log = zerolog.New(&logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
		c.Unknown, c.UnknownProfile = ipxe.UnknownProfile, "edge"
	})

	// The operator enrols the host with its secret, and previews it.
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"`+mac1+`","name":"node1","profile":"edge","site":{"edgeHostToken":"`+secret+`"}}`, http.StatusCreated, nil)
	if r := e.op(http.MethodGet, "/hosts/"+mac1+"/userdata?secrets=true", ""); !strings.Contains(r.text(), secret) {
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
	r := e.get("/userdata/" + tok)
	if !strings.Contains(r.text(), secret) {
		t.Fatalf("the installer's user-data lacks the site secret:\n%s", r.body)
	}
	e.get("/userdata/" + tok + "x")
	e.post("/callback/"+tok+"x/done", "")
	decodeCallback(t, e.post("/callback/"+tok+"/done", ""))
	e.get("/userdata/" + tok) // 410, logged
	e.stage2(query1)          // local boot

	// A second host enrolled by the default profile fails its install.
	_, tok2 := e.stage2("mac=52-54-00-aa-00-02")
	e.get("/userdata/" + tok2)
	e.post("/callback/"+tok2+"/failed", "installer: wrong "+secret+" rejected by Palette")

	e.srv.Close() // all handlers done before reading the buffer
	out := logs.String()
	if !strings.Contains(out, "user-data served") || !strings.Contains(out, "bad stage-2 query") || !strings.Contains(out, "user-data refused") {
		t.Fatalf("the capture missed the flow's log lines:\n%s", out)
	}
	t.Logf("%d bytes of logs captured", len(out))
	for name, s := range map[string]string{
		"edgeHostToken":       secret,
		"install token":       tok,
		"second token":        tok2,
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
