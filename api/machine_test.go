package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

const (
	mac1   = "52:54:00:aa:00:01"
	query1 = "mac=52-54-00-aa-00-01&uuid=8a3c0e2e-0000-4000-8000-000000000001&serial=SN-0001&manufacturer=QEMU&product=Standard%20PC&buildarch=x86_64&platform=efi"
)

type callbackAnswer struct {
	MAC     string `json:"mac"`
	State   string `json:"state"`
	Changed bool   `json:"changed"`
}

func decodeCallback(t *testing.T, r resp) callbackAnswer {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("callback: status %d: %s", r.status, r.body)
	}
	var a callbackAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestMachineFlow walks one host through what its firmware, iPXE and the
// installer do, in order, and checks what each step hands back.
func TestMachineFlow(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "rack1-node01", Serial: "SN-0001", Profile: "edge"})

	// Stage 1: static, chains to stage 2 on this server.
	r := e.get("/boot.ipxe")
	if r.status != http.StatusOK || !strings.HasPrefix(r.text(), "#!ipxe\n") ||
		!strings.Contains(r.text(), "chain --autofree "+e.base+"/ipxe?mac=${mac:hexhyp}&") {
		t.Fatalf("stage 1: %d\n%s", r.status, r.body)
	}
	if head := e.request(http.MethodHead, "/boot.ipxe", nil, nil); head.status != http.StatusOK || len(head.body) != 0 {
		t.Fatalf("HEAD /boot.ipxe: %d, %d bytes", head.status, len(head.body))
	}

	// Stage 2: the install script.
	script, token := e.stage2(query1)
	if token == "" {
		t.Fatalf("install script has no config_url:\n%s", script)
	}
	for _, want := range []string{
		"echo stagehand: installing " + mac1 + " (rack1-node01) (attempt 1)",
		"kernel " + e.base + "/artifacts/edge/kernel initrd=initrd.img console=ttyS0 rd.neednet=1 config_url=" + e.base + "/userdata/" + token + " ",
		"initrd --name initrd.img " + e.base + "/artifacts/edge/initrd ",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("install script lacks %q:\n%s", want, script)
		}
	}
	h := e.host(mac1)
	if h.State != inventory.StateBooting || h.Attempt != 1 || h.Facts.Product != "Standard PC" || h.LastArch != "x86_64-efi" || h.LastIP != "127.0.0.1" {
		t.Fatalf("after stage 2: %+v", h)
	}

	// The kernel and initrd the script names.
	if r := e.get("/artifacts/edge/kernel"); r.status != http.StatusOK || !bytes.Equal(r.body, e.kernel) {
		t.Fatalf("kernel: %d, %d bytes", r.status, len(r.body))
	}
	if r := e.get("/artifacts/edge/initrd"); r.status != http.StatusOK || !bytes.Equal(r.body, e.initrd) {
		t.Fatalf("initrd: %d, %d bytes", r.status, len(r.body))
	}

	// The installer's user-data.
	r = e.get("/userdata/" + token)
	if r.status != http.StatusOK {
		t.Fatalf("user-data: %d %s", r.status, r.body)
	}
	ud := r.text()
	if !strings.HasPrefix(ud, "#cloud-config\n") {
		t.Fatalf("user-data does not start with #cloud-config:\n%s", ud)
	}
	for _, want := range []string{"name: rack1-node01", "paletteEndpoint: api.spectrocloud.example", e.base + "/callback/" + token + "/done", "reboot: false"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user-data lacks %q:\n%s", want, ud)
		}
	}
	// The profile says reboot: false, so power is the operator's: no
	// default poweroff beside it.
	if strings.Contains(ud, "poweroff") {
		t.Errorf("user-data gained a poweroff beside the profile's reboot:\n%s", ud)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/cloud-config") || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("user-data headers: %v", r.header)
	}
	if st := e.host(mac1).State; st != inventory.StateInstalling {
		t.Fatalf("after user-data: %s", st)
	}

	// The installer reports completion, and repeats itself.
	if a := decodeCallback(t, e.post("/callback/"+token+"/done", "")); a.MAC != mac1 || a.State != "installed" || !a.Changed {
		t.Fatalf("done: %+v", a)
	}
	if a := decodeCallback(t, e.post("/callback/"+token+"/done", "")); a.State != "installed" || a.Changed {
		t.Fatalf("repeated done: %+v", a)
	}
	if h := e.host(mac1); h.State != inventory.StateInstalled || h.InstalledAt.IsZero() {
		t.Fatalf("after done: %+v", h)
	}

	// The attempt is over.
	wantTerse(t, e.get("/userdata/"+token), http.StatusGone)

	// Next PXE boot: local disk, no new attempt.
	script, tok2 := e.stage2(query1)
	if tok2 != "" || strings.Contains(script, "kernel ") || !strings.Contains(script, "booting local disk") || !strings.Contains(script, "\nexit 1\n") {
		t.Fatalf("stage 2 after install:\n%s", script)
	}
	if h := e.host(mac1); h.Attempt != 1 || h.State != inventory.StateInstalled {
		t.Fatalf("after local boot: attempt %d, %s", h.Attempt, h.State)
	}
	// Artifact downloads and local boots go through the recorder (the
	// request does not wait for that commit): flush it, then read. The
	// artifact events are checked apart from the ordered steps, since the
	// synchronous steps commit before them.
	e.flush()
	// The late user-data request is on the record, not in its answer;
	// stage 2 of the installed host records one event (localboot) and
	// changes nothing (inventory.Store.Seen).
	want := []string{"created", "script", "booting", "userdata", "installed", "userdata-refused", "localboot"}
	var got, artifacts []string
	for _, k := range eventKinds(t, e.store, mac1) {
		if k == "artifact" {
			artifacts = append(artifacts, k)
		} else {
			got = append(got, k)
		}
	}
	if !reflect.DeepEqual(got, want) || len(artifacts) != 2 {
		t.Fatalf("events = %v and %d artifact events\nwant     %v and 2", got, len(artifacts), want)
	}
}

func TestLocalBootMethodFromProfile(t *testing.T) {
	e := newEnv(t, nil)
	p, err := e.store.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	p.Local = inventory.LocalBootSanboot
	if err := e.store.PutProfile(p); err != nil {
		t.Fatal(err)
	}
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	_, tok := e.stage2("mac=" + mac1)
	if r := e.post("/callback/"+tok+"/failed", "no disk"); r.status != http.StatusOK {
		t.Fatalf("failed: %d %s", r.status, r.body)
	}
	script, _ := e.stage2("mac=" + mac1)
	if !strings.Contains(script, "sanboot --no-describe --drive 0x80") {
		t.Fatalf("failed host with a sanboot profile:\n%s", script)
	}
}

// The same live attempt keeps its token: a VM reset mid-install gets the
// same one back, and the installer holding it is still heard.
func TestResetMidInstallKeepsToken(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	_, tok1 := e.stage2("mac=" + mac1)
	if r := e.get("/userdata/" + tok1); r.status != http.StatusOK {
		t.Fatalf("user-data: %d", r.status)
	}
	// The VM reset: iPXE asks again while installing.
	_, tok2 := e.stage2("mac=" + mac1)
	if tok2 != tok1 {
		t.Fatalf("the repeated install script carries token %q, want the attempt's %q", tok2, tok1)
	}
	if r := e.get("/userdata/" + tok1); r.status != http.StatusOK {
		t.Fatalf("the attempt's token after the reset: %d", r.status)
	}
	if h := e.host(mac1); h.Attempt != 1 {
		t.Fatalf("attempt %d, want 1", h.Attempt)
	}
}

func TestUnknownHosts(t *testing.T) {
	const q = "mac=52-54-00-bb-00-01&uuid=U-1&serial=SER%20042&manufacturer=Supermicro&product=SYS-E300&buildarch=x86_64&platform=pcbios"
	const mac = "52:54:00:bb:00:01"

	t.Run("ignore", func(t *testing.T) {
		e := newEnv(t, nil)
		script, tok := e.stage2(q)
		if tok != "" || !strings.Contains(script, mac+" is not in the inventory; nothing to boot") {
			t.Fatalf("script:\n%s", script)
		}
		if hs := e.hosts(); len(hs) != 0 {
			t.Fatalf("ignore policy recorded %+v", hs)
		}
	})

	t.Run("discover", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.Unknown = ipxe.UnknownDiscover })
		for i := 0; i < 2; i++ { // the wait script asks again: same answer
			script, tok := e.stage2(q)
			if tok != "" || !strings.Contains(script, "sleep 60\nchain --autofree "+e.base+"/boot.ipxe") {
				t.Fatalf("ask %d: script:\n%s", i, script)
			}
		}
		hs := e.hosts()
		if len(hs) != 1 {
			t.Fatalf("hosts = %+v", hs)
		}
		h := hs[0]
		want := inventory.Facts{UUID: "U-1", Serial: "SER 042", Manufacturer: "Supermicro", Product: "SYS-E300", BuildArch: "x86_64", Platform: "pcbios"}
		if h.MAC != mac || h.State != inventory.StateDiscovered || h.Facts != want || h.Profile != "" || h.Attempt != 0 {
			t.Fatalf("discovered host = %+v", h)
		}
	})

	t.Run("default profile", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.Unknown, c.UnknownProfile = ipxe.UnknownProfile, "edge" })
		script, tok := e.stage2(q)
		if tok == "" || !strings.Contains(script, "kernel "+e.base+"/artifacts/edge/kernel initrd=initrd.img") {
			t.Fatalf("script:\n%s", script)
		}
		h := e.host(mac)
		if h.Profile != "edge" || h.State != inventory.StateBooting || h.Attempt != 1 || h.Facts.Product != "SYS-E300" {
			t.Fatalf("enrolled host = %+v", h)
		}
		if r := e.get("/userdata/" + tok); r.status != http.StatusOK || !strings.HasPrefix(r.text(), "#cloud-config") {
			t.Fatalf("user-data: %d %s", r.status, r.body)
		}
	})
}

func TestStage2BadQueries(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Unknown = ipxe.UnknownDiscover })
	for _, q := range []string{
		"",
		"serial=x",
		"mac=not-a-mac",
		"mac=52-54-00-bb-00-01&mac=52-54-00-bb-00-02",
		"mac=52-54-00-bb-00-01&serial=" + strings.Repeat("x", 200),
		"mac=52-54-00-bb-00-01&product=a%0Achain%20http://evil",
	} {
		wantError(t, e.get("/ipxe?"+q), http.StatusBadRequest, "validation")
	}
	if hs := e.hosts(); len(hs) != 0 {
		t.Fatalf("bad queries recorded hosts: %+v", hs)
	}
}

func TestUnknownTokens(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	_, live := e.stage2("mac=" + mac1)
	before := e.hosts()
	evBefore := eventKinds(t, e.store, mac1)

	flipped := []byte(live)
	if flipped[0] == 'a' {
		flipped[0] = 'b'
	} else {
		flipped[0] = 'a'
	}
	for _, tok := range []string{"nope", string(flipped), live + "x", strings.Repeat("t", 200)} {
		wantTerse(t, e.get("/userdata/"+tok), http.StatusNotFound)
		wantTerse(t, e.post("/callback/"+tok+"/done", ""), http.StatusNotFound)
		wantTerse(t, e.post("/callback/"+tok+"/failed", "boom"), http.StatusNotFound)
	}
	wantError(t, e.post("/callback/"+live+"/maybe", ""), http.StatusNotFound, "not_found")
	wantError(t, e.get("/callback/"+live+"/done"), http.StatusMethodNotAllowed, "method_not_allowed")
	e.unchanged(before)
	if got := eventKinds(t, e.store, mac1); !reflect.DeepEqual(got, evBefore) {
		t.Fatalf("events changed: %v → %v", evBefore, got)
	}
}

func TestCallbackFailedBodyBounded(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	_, tok := e.stage2("mac=" + mac1)
	body := strings.Repeat("E", 10<<10)
	a := decodeCallback(t, e.post("/callback/"+tok+"/failed", body))
	if a.State != "failed" || !a.Changed {
		t.Fatalf("failed: %+v", a)
	}
	h := e.host(mac1)
	if len(h.FailedMsg) > inventory.MaxFailMessage || !strings.HasPrefix(body, h.FailedMsg) || len(h.FailedMsg) == 0 {
		t.Fatalf("FailedMsg is %d bytes, want at most %d", len(h.FailedMsg), inventory.MaxFailMessage)
	}
	ev, _ := e.store.Events(mac1)
	if last := ev[len(ev)-1]; last.Kind != "failed" || len(last.Detail) > inventory.MaxFailMessage {
		t.Fatalf("failed event: %s, %d bytes", last.Kind, len(last.Detail))
	}
	// Still failed, and the store kept its first message.
	if a := decodeCallback(t, e.post("/callback/"+tok+"/failed", "second")); a.Changed {
		t.Fatalf("repeated failed: %+v", a)
	}
	if e.host(mac1).FailedMsg != h.FailedMsg {
		t.Fatal("repeated failure overwrote the message")
	}
	// Completion after failure is refused.
	wantTerse(t, e.post("/callback/"+tok+"/done", ""), http.StatusConflict)
}

func TestArtifacts(t *testing.T) {
	e := newEnv(t, nil)
	n := len(e.kernel)

	r := e.get("/artifacts/edge/kernel")
	if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(n) || !bytes.Equal(r.body, e.kernel) {
		t.Fatalf("GET kernel: %d, Content-Length %q, %d bytes", r.status, r.header.Get("Content-Length"), len(r.body))
	}
	if r.header.Get("Accept-Ranges") != "bytes" || r.header.Get("Last-Modified") == "" {
		t.Errorf("headers: %v", r.header)
	}

	r = e.request(http.MethodGet, "/artifacts/edge/kernel", nil, map[string]string{"Range": "bytes=1000-1999"})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, e.kernel[1000:2000]) ||
		r.header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", n) || r.header.Get("Content-Length") != "1000" {
		t.Fatalf("Range: %d, %v, %d bytes", r.status, r.header, len(r.body))
	}
	r = e.request(http.MethodGet, "/artifacts/edge/kernel", nil, map[string]string{"Range": "bytes=-16"})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, e.kernel[n-16:]) {
		t.Fatalf("suffix Range: %d, %d bytes", r.status, len(r.body))
	}
	r = e.request(http.MethodGet, "/artifacts/edge/kernel", nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-", n+10)})
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %d", r.status)
	}

	r = e.request(http.MethodHead, "/artifacts/edge/initrd", nil, nil)
	if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(len(e.initrd)) || len(r.body) != 0 {
		t.Fatalf("HEAD initrd: %d, Content-Length %q, %d bytes", r.status, r.header.Get("Content-Length"), len(r.body))
	}

	wantTerse(t, e.get("/artifacts/edge/vmlinuz"), http.StatusNotFound)
	wantTerse(t, e.get("/artifacts/edge/rootfs"), http.StatusNotFound) // profile has none
	wantTerse(t, e.get("/artifacts/nope/kernel"), http.StatusNotFound)
	wantError(t, e.request(http.MethodPost, "/artifacts/edge/kernel", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestBinariesOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.get("/tftp/snponly.efi"); r.status != http.StatusOK || r.text() != "SNPONLY-EFI-BYTES" {
		t.Fatalf("snponly.efi: %d %q", r.status, r.body)
	}
	if r := e.request(http.MethodHead, "/tftp/undionly.kpxe", nil, nil); r.status != http.StatusOK || r.header.Get("Content-Length") != "19" {
		t.Fatalf("HEAD undionly.kpxe: %d %v", r.status, r.header)
	}
	wantTerse(t, e.get("/tftp/ipxe.efi"), http.StatusNotFound)

	addr := e.srv.Listener.Addr().String()
	for _, path := range []string{
		"/tftp/../secret.txt",
		"/tftp/..%2fsecret.txt",
		"/tftp/%2e%2e%2fsecret.txt",
		"/tftp/%2E%2E%2Fsecret.txt",
		"/tftp/%2e%2e%2f%2e%2e%2fsecret.txt",
		"/tftp/x%2f..%2f..%2fsecret.txt",
		"/tftp/..",
		"/tftp/%2e%2e",
		"/tftp/.",
		"/tftp/..%5csecret.txt",
		"/tftp/.hidden",
		"/tftp/ipxe%2fundionly.kpxe",
		"/tftp/%2fetc%2fpasswd",
		"/tftp//etc/passwd",
	} {
		t.Run(path, func(t *testing.T) {
			// Follow redirects by hand (the router cleans dot segments
			// with a 301) and require the end to be a 404.
			p := path
			for hop := 0; ; hop++ {
				r := rawGET(t, addr, p)
				t.Logf("GET %s → %d %s", p, r.status, r.header.Get("Location"))
				if bytes.Contains(r.body, []byte("TOP-SECRET")) || bytes.Contains(r.body, []byte("root:")) {
					t.Fatalf("%s served a file outside the iPXE dir: %q", p, r.body)
				}
				if r.status == http.StatusMovedPermanently && hop < 3 {
					loc, err := url.Parse(r.header.Get("Location"))
					if err != nil {
						t.Fatal(err)
					}
					p = loc.RequestURI()
					continue
				}
				if r.status != http.StatusNotFound {
					t.Fatalf("%s (after %d redirects): status %d, want 404: %q", p, hop, r.status, r.body)
				}
				break
			}
		})
	}
}

func TestHealthzAndUnknownRoutes(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.get("/healthz"); r.status != http.StatusOK || r.text() != "ok\n" {
		t.Fatalf("healthz: %d %q", r.status, r.body)
	}
	wantError(t, e.get("/nope"), http.StatusNotFound, "not_found")
	wantError(t, e.request(http.MethodDelete, "/boot.ipxe", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed")
}

// A configuration that does not render is the operator's to fix: the
// installer gets 422 and the attempt stays where it was.
// A configuration the installer would reject is refused when it is
// written (host or profile), naming the host and field, and nothing is
// stored; the token of a live attempt keeps working.
func TestInvalidConfigRefusedAtWrite(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "node1", Profile: "edge"})
	_, tok := e.stage2("mac=" + mac1)
	before := e.hosts()
	p, err := e.store.Profile("edge")
	if err != nil {
		t.Fatal(err)
	}
	p.UserData = "install:\n  device: /dev/sda\n" // no paletteEndpoint anywhere
	err = e.store.PutProfile(p)
	if !errors.Is(err, inventory.ErrInvalid) || !strings.Contains(err.Error(), "paletteEndpoint") || !strings.Contains(err.Error(), mac1) {
		t.Fatalf("PutProfile with a base that leaves %s without paletteEndpoint: %v", mac1, err)
	}
	if got, _ := e.store.Profile("edge"); strings.Contains(got.UserData, "/dev/sda") {
		t.Fatalf("rejected profile was stored")
	}
	msg := wantError(t, e.op(http.MethodPatch, "/hosts/"+mac1, `{"site":{"network":{"type":"static","ipAddress":"10.0.0.5"}}}`), http.StatusBadRequest, "validation")
	if !strings.Contains(msg, mac1) || !strings.Contains(msg, "gateway") {
		t.Errorf("message %q does not name the host and the field", msg)
	}
	e.unchanged(before)
	if r := e.get("/userdata/" + tok); r.status != http.StatusOK || !strings.Contains(r.text(), "#cloud-config") {
		t.Fatalf("live token after rejected writes: %d %s", r.status, r.body)
	}
}

// A machine that PXE-boots from one of its other NICs (Host.OtherMACs) is
// its host: stage 2 installs it under the host's record, the user-data is
// the host's, and nothing is created for the NIC's MAC.
func TestStage2FromOtherNIC(t *testing.T) {
	e := newEnv(t, nil)
	e.addHost(inventory.Host{MAC: mac1, Name: "rack1-node01", Profile: "edge", OtherMACs: []string{"52:54:00:aa:00:f1"}})
	script, token := e.stage2(strings.Replace(query1, "mac=52-54-00-aa-00-01", "mac=52-54-00-AA-00-F1", 1))
	if token == "" || !strings.Contains(script, "echo stagehand: installing "+mac1+" (rack1-node01) (attempt 1)") {
		t.Fatalf("stage 2 from the other NIC:\n%s", script)
	}
	if h := e.host(mac1); h.State != inventory.StateBooting || h.Attempt != 1 {
		t.Fatalf("host after stage 2 from its other NIC: %+v", h)
	}
	if r := e.get("/userdata/" + token); r.status != http.StatusOK || !strings.Contains(r.text(), "rack1-node01") {
		t.Fatalf("user-data: %d\n%s", r.status, r.body)
	}
	if hs := e.hosts(); len(hs) != 1 {
		t.Fatalf("hosts after the boot: %+v, want only the one", hs)
	}
	// The operator API looks the host up by either MAC.
	var v api.HostView
	e.opJSON(http.MethodGet, "/hosts/52-54-00-aa-00-f1", "", http.StatusOK, &v)
	if v.MAC != mac1 || v.State != inventory.StateInstalling {
		t.Fatalf("GET /hosts/<other NIC> = %+v", v)
	}
}
