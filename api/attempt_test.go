package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/internal/testbuf"
	"github.com/stagehand-dev/stagehand/inventory"
)

// otherIP is a second loopback address: Linux routes all of 127/8 to lo,
// so a client bound to it reaches the test server from a different
// source address, as a second machine would.
const otherIP = "127.0.0.2"

// requestFrom sends one request from a client socket bound to ip.
func (e *env) requestFrom(ip, method, path string, body io.Reader) resp {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s from %s: %v", method, path, ip, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) getFrom(ip, path string) resp { return e.requestFrom(ip, http.MethodGet, path, nil) }

// stage2From is stage2 for a host whose iPXE runs at ip.
func (e *env) stage2From(ip, mac string) string {
	e.t.Helper()
	e.sawDHCP(ip, mac)
	r := e.getFrom(ip, "/ipxe?mac="+mac)
	m := configURL.FindStringSubmatch(r.text())
	if r.status != http.StatusOK || m == nil {
		e.t.Fatalf("stage 2 for %s from %s: %d\n%s", mac, ip, r.status, r.body)
	}
	return strings.TrimPrefix(m[1], e.base+"/userdata/")
}

func (e *env) allEvents() map[string][]inventory.Event {
	e.t.Helper()
	out := map[string][]inventory.Event{}
	for _, h := range e.hosts() {
		ev, err := e.store.Events(h.MAC)
		if err != nil {
			e.t.Fatal(err)
		}
		out[h.MAC] = ev
	}
	return out
}

// TestDeadTokensOverHTTP presents tokens of every attempt that is not
// live to the machine endpoints: each answer is 404 or 410 (or, for the
// installed host's repeated done, an idempotent 200), and neither hosts
// nor events change.
func TestDeadTokensOverHTTP(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.BindUserDataToIP = true })
	const (
		macReprov    = "52:54:00:aa:00:03"
		macInstalled = "52:54:00:aa:00:04"
		macFailed    = "52:54:00:aa:00:05"
	)
	for _, m := range []string{macReprov, macInstalled, macFailed} {
		e.addHost(inventory.Host{MAC: m, Profile: "edge"})
	}
	reprov := e.stage2From("127.0.0.1", macReprov)
	e.opJSON(http.MethodPost, "/hosts/"+macReprov+"/reprovision", "", http.StatusOK, nil)
	installed := e.stage2From("127.0.0.1", macInstalled)
	if r := e.get("/userdata/" + installed); r.status != http.StatusOK {
		t.Fatalf("user-data: %d %s", r.status, r.body)
	}
	decodeCallback(t, e.post("/callback/"+installed+"/done", ""))
	failed := e.stage2From("127.0.0.1", macFailed)
	decodeCallback(t, e.post("/callback/"+failed+"/failed", "no disk"))

	type answer struct {
		status int
		code   string
	}
	ok := answer{http.StatusOK, ""}
	for _, tc := range []struct {
		name              string
		token             string
		userdata          answer
		done, fail        answer
		goneMessagePrefix string
	}{
		{"unknown", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", answer{404, "not_found"}, answer{404, "not_found"}, answer{404, "not_found"}, ""},
		{"reprovisioned", reprov, answer{410, "gone"}, answer{410, "gone"}, answer{410, "gone"}, "gone: attempt 1 of " + macReprov + " is over"},
		{"installed", installed, answer{410, "gone"}, ok, answer{409, "conflict"}, "gone: attempt 1 of " + macInstalled + " is over"},
		{"failed", failed, answer{410, "gone"}, answer{409, "conflict"}, ok, "gone: attempt 1 of " + macFailed + " is over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts, events := e.hosts(), e.allEvents()
			check := func(what string, r resp, want answer) {
				t.Helper()
				if want.status == http.StatusOK {
					if a := decodeCallback(t, r); a.Changed {
						t.Errorf("%s: %+v, want changed=false", what, a)
					}
					return
				}
				wantTerse(t, r, want.status)
			}
			check("user-data", e.get("/userdata/"+tc.token), tc.userdata)
			// From the bound address or not, the attempt's end comes first.
			check("user-data from elsewhere", e.getFrom(otherIP, "/userdata/"+tc.token), tc.userdata)
			check("done", e.post("/callback/"+tc.token+"/done", ""), tc.done)
			check("failed", e.post("/callback/"+tc.token+"/failed", "late"), tc.fail)
			e.unchanged(hosts)
			// Only the refusals are added, on the token's host (for a
			// token that was ever issued), one saying why.
			e.flush()
			after, said := e.allEvents(), false
			for mac, evs := range after {
				if len(evs) < len(events[mac]) || !reflect.DeepEqual(evs[:len(events[mac])], events[mac]) {
					t.Fatalf("events of %s changed:\nbefore %+v\nafter  %+v", mac, events[mac], evs)
				}
				for _, ev := range evs[len(events[mac]):] {
					if !strings.HasSuffix(ev.Kind, "-refused") {
						t.Errorf("event on %s beyond refusals: %+v", mac, ev)
					}
					said = said || tc.goneMessagePrefix != "" && strings.Contains(ev.Detail, tc.goneMessagePrefix)
				}
			}
			if said != (tc.goneMessagePrefix != "") {
				t.Errorf("refusal events: want one saying %q only for an issued token", tc.goneMessagePrefix)
			}
			events = e.allEvents()
		})
	}
}

// TestUserDataIPBinding: host B's live token presented from host A's
// address, end to end over real sockets from two source addresses.
func TestUserDataIPBinding(t *testing.T) {
	const macA, macB = "52:54:00:aa:00:0a", "52:54:00:aa:00:0b"
	setup := func(t *testing.T, bind bool) (*env, *testbuf.Buffer, string, string) {
		var logs testbuf.Buffer
		e := newEnv(t, func(c *api.Config) {
			c.BindUserDataToIP = bind
			c.Log = zerolog.New(zerolog.MultiLevelWriter(&logs, zerolog.NewTestWriter(t)))
		})
		e.addHost(inventory.Host{MAC: macA, Profile: "edge"})
		e.addHost(inventory.Host{MAC: macB, Profile: "edge"})
		tokA := e.stage2From("127.0.0.1", macA)
		tokB := e.stage2From(otherIP, macB)
		if h := e.host(macB); h.ScriptIP != otherIP || h.LastIP != otherIP {
			t.Fatalf("host B after stage 2 from %s: %+v", otherIP, h)
		}
		return e, &logs, tokA, tokB
	}

	t.Run("on", func(t *testing.T) {
		e, logs, tokA, tokB := setup(t, true)
		hosts, events := e.hosts(), e.allEvents()

		r := e.getFrom("127.0.0.1", "/userdata/"+tokB)
		wantTerse(t, r, http.StatusForbidden)
		if strings.Contains(r.text(), otherIP) || strings.Contains(r.text(), macB) {
			t.Errorf("403 body tells the caller the bound address or the host: %s", r.body)
		}
		e.unchanged(hosts)
		after := e.allEvents()
		if !reflect.DeepEqual(after[macA], events[macA]) {
			t.Errorf("host A's events changed: %+v", after[macA])
		}
		gotB := after[macB]
		if len(gotB) != len(events[macB])+1 || !reflect.DeepEqual(gotB[:len(events[macB])], events[macB]) {
			t.Fatalf("host B's events: %v, want one added", gotB)
		}
		if last := gotB[len(gotB)-1]; last.Kind != "userdata-refused" || !strings.Contains(last.Detail, "127.0.0.1") {
			t.Errorf("refusal event %+v", last)
		}
		// The debug log has the MAC and both addresses.
		var line map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "machine request refused") {
				json.Unmarshal([]byte(l), &line)
			}
		}
		if reason, _ := line["reason"].(string); line["mac"] != macB || line["ip"] != "127.0.0.1" || !strings.Contains(reason, "bound to "+otherIP) || line["level"] != "debug" {
			t.Errorf("refusal log line %v", line)
		}

		// The right addresses get their own documents.
		if r := e.getFrom(otherIP, "/userdata/"+tokB); r.status != http.StatusOK || !strings.HasPrefix(r.text(), "#cloud-config\n") {
			t.Fatalf("B from its own address: %d %s", r.status, r.body)
		}
		if r := e.getFrom("127.0.0.1", "/userdata/"+tokA); r.status != http.StatusOK {
			t.Fatalf("A from its own address: %d %s", r.status, r.body)
		}
		if h := e.host(macB); h.State != inventory.StateInstalling || h.LastIP != otherIP {
			t.Fatalf("host B: %+v", h)
		}
		// Callbacks are not bound: the installer may report from the
		// site's static address after reconfiguring the network.
		if a := decodeCallback(t, e.requestFrom("127.0.0.1", http.MethodPost, "/callback/"+tokB+"/done", nil)); !a.Changed || a.State != "installed" {
			t.Fatalf("done from another address: %+v", a)
		}
	})

	t.Run("off", func(t *testing.T) {
		e, logs, _, tokB := setup(t, false)
		if r := e.getFrom("127.0.0.1", "/userdata/"+tokB); r.status != http.StatusOK || !strings.HasPrefix(r.text(), "#cloud-config\n") {
			t.Fatalf("binding off, B's token from A's address: %d %s", r.status, r.body)
		}
		if h := e.host(macB); h.State != inventory.StateInstalling || h.LastIP != "127.0.0.1" {
			t.Fatalf("host B: %+v", h)
		}
		if k := eventKinds(t, e.store, macB); k[len(k)-1] != "userdata" {
			t.Fatalf("events %v", k)
		}
		if strings.Contains(logs.String(), "boundIP") {
			t.Errorf("a refusal was logged with binding off:\n%s", logs.String())
		}
	})
}

// TestCallbackRepeats: a repeated done is 200 changed=false and records
// nothing; a failure message is bounded and cleaned; a done after a
// failure is the state machine's 409.
func TestCallbackRepeats(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.BindUserDataToIP = true })
	const macB = "52:54:00:aa:00:02"
	e.addHost(inventory.Host{MAC: mac1, Profile: "edge"})
	e.addHost(inventory.Host{MAC: macB, Profile: "edge"})

	tok := e.stage2From("127.0.0.1", mac1)
	if a := decodeCallback(t, e.post("/callback/"+tok+"/done", "")); !a.Changed {
		t.Fatalf("first done: %+v", a)
	}
	hosts, events := e.hosts(), e.allEvents()
	for i := 0; i < 3; i++ {
		if a := decodeCallback(t, e.post("/callback/"+tok+"/done", "")); a.Changed || a.State != "installed" || a.MAC != mac1 {
			t.Fatalf("repeated done %d: %+v", i, a)
		}
	}
	e.unchanged(hosts)
	if after := e.allEvents(); !reflect.DeepEqual(after, events) {
		t.Fatalf("repeated done recorded something: %+v", after[mac1])
	}

	tokB := e.stage2From("127.0.0.1", macB)
	body := "\x1b[31mpartition failed\x1b[0m\n" + strings.Repeat("E", 8<<10)
	if a := decodeCallback(t, e.post("/callback/"+tokB+"/failed", body)); !a.Changed || a.State != "failed" {
		t.Fatalf("failed: %+v", a)
	}
	h := e.host(macB)
	if len(h.FailedMsg) != inventory.MaxFailMessage || !strings.HasPrefix(h.FailedMsg, `\x1b[31mpartition failed\x1b[0m\nEEE`) || strings.Contains(h.FailedMsg, "\x1b") {
		t.Fatalf("FailedMsg (%d bytes) %.60q", len(h.FailedMsg), h.FailedMsg)
	}
	hosts, events = e.hosts(), e.allEvents()
	wantTerse(t, e.post("/callback/"+tokB+"/done", ""), http.StatusConflict)
	if a := decodeCallback(t, e.post("/callback/"+tokB+"/failed", "other")); a.Changed {
		t.Fatalf("repeated failed: %+v", a)
	}
	e.unchanged(hosts)
	e.flush()
	after := e.allEvents()
	if got := after[macB]; len(got) != len(events[macB])+1 || !reflect.DeepEqual(got[:len(events[macB])], events[macB]) ||
		got[len(got)-1].Kind != "callback-refused" || !strings.Contains(got[len(got)-1].Detail, "cannot") && !strings.Contains(got[len(got)-1].Detail, "conflict") {
		t.Fatalf("refused callbacks: events %+v, want one callback-refused event added", got)
	}
}
