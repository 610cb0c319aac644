package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

const (
	testToken = "operator-token-for-tests"
	baseUD    = `#cloud-config
stylus:
  site:
    paletteEndpoint: api.spectrocloud.example
    tags:
      rack: r1
install:
  reboot: false
`
)

// env is one stagehand HTTP server on loopback with a real store in
// t.TempDir() and real files as the installer artifacts.
type env struct {
	t       *testing.T
	store   *inventory.Store
	srv     *httptest.Server
	base    string
	kernel  []byte
	initrd  []byte
	root    string // temp dir holding the ipxe dir and a file outside it
	ipxeDir string
	client  *http.Client
	events  *events.Recorder // the informational events' recorder
	feed    *events.Hub      // the store's live feed
	attrib  *attrib.Index    // what the server knows of who is at which address
}

// newEnv builds the server; mod may change the Config before api.New.
func newEnv(t *testing.T, mod func(*api.Config)) *env {
	t.Helper()
	return newEnvOn(t, nil, mod)
}

// newEnvOn is newEnv serving on ln (nil: a loopback port of its own).
func newEnvOn(t *testing.T, ln net.Listener, mod func(*api.Config)) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, root: root, ipxeDir: filepath.Join(root, "ipxe")}
	rng := rand.New(rand.NewPCG(1, 2))
	e.kernel = make([]byte, 300<<10)
	for i := range e.kernel {
		e.kernel[i] = byte(rng.Uint32())
	}
	e.initrd = bytes.Repeat([]byte("initrd-bytes "), 4000)
	write := func(p string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "artifacts", "vmlinuz"), e.kernel)
	write(filepath.Join(root, "artifacts", "initrd.img"), e.initrd)
	write(filepath.Join(e.ipxeDir, "undionly.kpxe"), []byte("UNDIONLY-KPXE-BYTES"))
	write(filepath.Join(e.ipxeDir, "snponly.efi"), []byte("SNPONLY-EFI-BYTES"))
	write(filepath.Join(root, "secret.txt"), []byte("TOP-SECRET-OUTSIDE-ROOT"))

	bins, err := ipxe.LoadBinaries(e.ipxeDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		Attrib:   attrib.New(attrib.Config{}),
		Binaries: bins,
		Token:    testToken,
		Log:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
		Now:      func() time.Time { return time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC) },
	}
	storeLog := cfg.Log
	if mod != nil {
		mod(&cfg)
		storeLog = cfg.Log
	}
	e.feed = events.NewHub()
	st, err := inventory.Open(filepath.Join(root, "data"), inventory.Options{Log: storeLog, LockTimeout: 200 * time.Millisecond, OnEvents: e.feed.Publish})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.attrib = cfg.Attrib
	cfg.Store = st
	e.events = events.NewRecorder(events.Config{Sink: st, Log: storeLog})
	if cfg.Events == nil {
		cfg.Events = e.events
	}
	if cfg.Feed == nil {
		cfg.Feed = e.feed
	}
	if err := st.PutProfile(inventory.Profile{
		Name: "edge", Kernel: filepath.Join(root, "artifacts", "vmlinuz"), Initrd: filepath.Join(root, "artifacts", "initrd.img"),
		Cmdline: "console=ttyS0 rd.neednet=1", UserData: baseUD,
	}); err != nil {
		t.Fatal(err)
	}

	// The base URL goes into scripts, so the listener comes first.
	e.srv = httptest.NewUnstartedServer(nil)
	if ln != nil {
		e.srv.Listener.Close()
		e.srv.Listener = ln
	}
	e.base = "http://" + e.srv.Listener.Addr().String()
	cfg.Base = e.base
	e.srv.Config.Handler = api.New(cfg)
	e.srv.Start()
	e.client = e.srv.Client()
	t.Cleanup(func() {
		e.feed.Close() // ends open event streams, which Close waits for
		e.srv.Close()  // waits for in-flight handlers
		e.flush()
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return e
}

// flush waits until the events recorded so far are committed.
func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.events.Flush(ctx); err != nil {
		e.t.Fatalf("flushing the event recorder: %v", err)
	}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) text() string { return string(r.body) }

// request sends one request; auth adds the operator bearer token.
func (e *env) request(method, path string, body io.Reader, hdr map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) get(path string) resp { return e.request(http.MethodGet, path, nil, nil) }

func (e *env) post(path, body string) resp {
	return e.request(http.MethodPost, path, strings.NewReader(body), nil)
}

var bearer = map[string]string{"Authorization": "Bearer " + testToken}

// op calls the operator API with the right token.
func (e *env) op(method, path, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return e.request(method, "/api/v1"+path, rd, bearer)
}

// opJSON calls the operator API, wants status, and decodes the answer.
func (e *env) opJSON(method, path, body string, want int, out any) {
	e.t.Helper()
	r := e.op(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, r.body, err)
		}
	}
}

// wantError checks the API error shape {"error":{"code","message"}}.
func wantError(t *testing.T, r resp, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	var shape map[string]map[string]string
	if err := json.Unmarshal(r.body, &shape); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	inner, ok := shape["error"]
	if len(shape) != 1 || !ok || len(inner) != 2 || inner["message"] == "" {
		t.Fatalf("error body %s is not {\"error\":{\"code\",\"message\"}}", r.body)
	}
	if inner["code"] != code {
		t.Fatalf("error code %q, want %q (%s)", inner["code"], code, inner["message"])
	}
	return inner["message"]
}

// wantTerse checks a machine route's refusal: the status and its text,
// nothing else (api/refuse.go).
func wantTerse(t *testing.T, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); r.header != nil && ct != "text/plain; charset=utf-8" {
		t.Errorf("refusal Content-Type %q", ct)
	}
	if want := http.StatusText(status) + "\n"; string(r.body) != want {
		t.Errorf("refusal body %q, want only %q", r.body, want)
	}
}

func (e *env) hosts() []inventory.Host {
	e.t.Helper()
	hs, err := e.store.Hosts(inventory.Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return hs
}

func (e *env) host(mac string) inventory.Host {
	e.t.Helper()
	h, err := e.store.Host(mac)
	if err != nil {
		e.t.Fatalf("Host(%s): %v", mac, err)
	}
	return h
}

func (e *env) unchanged(before []inventory.Host) {
	e.t.Helper()
	if after := e.hosts(); !reflect.DeepEqual(before, after) {
		e.t.Errorf("store changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func (e *env) addHost(h inventory.Host) inventory.Host {
	e.t.Helper()
	h, err := e.store.CreateHost(h)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

var configURL = regexp.MustCompile(`config_url=(\S+)`)

// sawDHCP tells the server's attribution what a real host's boot tells
// it before stage 2: a DHCP exchange that named mac at ip.
func (e *env) sawDHCP(ip, mac string) {
	e.t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		e.t.Fatalf("sawDHCP: %v", err)
	}
	e.attrib.Observe(netip.MustParseAddr(ip), hw, attrib.SourceDHCP)
}

// stage2 asks what mac should do, as a host on loopback that did DHCP,
// and, for an install script, returns the token from its config_url.
func (e *env) stage2(query string) (script, token string) {
	e.t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		e.t.Fatal(err)
	}
	if m, err := inventory.NormalizeMAC(q.Get("mac")); err == nil {
		e.sawDHCP("127.0.0.1", m)
	}
	r := e.get("/ipxe?" + query)
	if r.status != http.StatusOK {
		e.t.Fatalf("stage 2: status %d: %s", r.status, r.body)
	}
	script = r.text()
	if m := configURL.FindStringSubmatch(script); m != nil {
		tok, ok := strings.CutPrefix(m[1], e.base+"/userdata/")
		if !ok {
			e.t.Fatalf("config_url %s is not under %s/userdata/", m[1], e.base)
		}
		token = tok
	}
	return script, token
}

func eventKinds(t *testing.T, st *inventory.Store, mac string) []string {
	t.Helper()
	ev, err := st.Events(mac)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e.Kind
	}
	return out
}

// rawGET sends path exactly as given (no client-side cleaning or
// escaping) and returns the response.
func rawGET(t *testing.T, addr, path string) resp {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}
