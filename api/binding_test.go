package api_test

import (
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

const hostSecret = "edge-host-token-of-the-victim"

// victim adds a host whose user-data carries a registration token.
func victim(e *env, mac string) {
	e.t.Helper()
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"`+mac+`","name":"victim","profile":"edge","site":{"edgeHostToken":"`+hostSecret+`"}}`, http.StatusCreated, nil)
}

func (e *env) eventsOf(mac string) []inventory.Event {
	e.t.Helper()
	e.flush() // refusals are recorded through the recorder
	ev, err := e.store.Events(mac)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// wantRefused checks a stage-2 refusal: 403, a script that says why, the
// host record untouched, and exactly one event on it naming the address.
func wantRefused(t *testing.T, e *env, r resp, mac, ip string, before []inventory.Host, events []inventory.Event) {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Fatalf("stage 2 for %s from %s: status %d, want 403:\n%s", mac, ip, r.status, r.body)
	}
	if strings.Contains(r.text(), "config_url") || strings.Contains(r.text(), "/userdata/") {
		t.Fatalf("refusal carries a user-data URL:\n%s", r.body)
	}
	wantTerse(t, r, http.StatusForbidden) // the why is in the event below
	e.unchanged(before)
	e.flush()
	got, err := e.store.Events(mac)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events)+1 || !reflect.DeepEqual(got[:len(events)], events) {
		t.Fatalf("events of %s: %+v, want one added to %+v", mac, got, events)
	}
	if last := got[len(got)-1]; last.Kind != "stage2-refused" || !strings.Contains(last.Detail, ip) || !strings.Contains(last.Detail, "ties") {
		t.Errorf("refusal event %+v does not name %s and the missing evidence", last, ip)
	}
}

// TestStage2Stranger is a stranger's theft of a host's secrets: from an address that
// never did DHCP (a second loopback address), name a known host's MAC in
// stage 2, take the token from the install script, fetch the user-data
// and read the host's edgeHostToken. Under the default strict binding
// the stranger gets 403 and nothing changes but an event on the host;
// the host itself, with a DHCP exchange that names its address, boots;
// and with the binding off, the MAC is trusted again.
func TestStage2Stranger(t *testing.T) {
	const mac = "52:54:00:aa:00:51"
	t.Run("strict", func(t *testing.T) {
		e := newEnv(t, nil)
		victim(e, mac)
		before, events := e.hosts(), e.eventsOf(mac)
		r := e.getFrom(otherIP, "/ipxe?mac="+mac)
		if m := configURL.FindStringSubmatch(r.text()); m != nil {
			ud := e.getFrom(otherIP, strings.TrimPrefix(m[1], e.base))
			t.Fatalf("a stranger at %s got host %s's install script and then its user-data (%d), secret leaked: %v",
				otherIP, mac, ud.status, strings.Contains(ud.text(), hostSecret))
		}
		wantRefused(t, e, r, mac, otherIP, before, events)
		if h := e.host(mac); h.Attempt != 0 || h.State != inventory.StateReady || h.LastIP != "" || h.ScriptIP != "" {
			t.Fatalf("host after the refusal: %+v", h)
		}

		// Evidence for another MAC at the stranger's address is no
		// evidence for this one.
		const third = "127.0.0.3"
		e.sawDHCP(third, "52:54:00:aa:00:52")
		events = e.eventsOf(mac)
		wantRefused(t, e, e.getFrom(third, "/ipxe?mac="+mac), mac, third, before, events)

		// The host, seen in DHCP at its address, gets its script and its
		// user-data.
		tok := e.stage2From(otherIP, mac)
		ud := e.getFrom(otherIP, "/userdata/"+tok)
		if ud.status != http.StatusOK || !strings.Contains(ud.text(), hostSecret) {
			t.Fatalf("the host's own user-data: %d\n%s", ud.status, ud.body)
		}
		if h := e.host(mac); h.Attempt != 1 || h.ScriptIP != otherIP {
			t.Fatalf("host after its own stage 2: %+v", h)
		}
	})
	t.Run("off", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.MACBinding = api.MACBindingOff })
		victim(e, mac)
		r := e.getFrom(otherIP, "/ipxe?mac="+mac)
		if r.status != http.StatusOK || !configURL.MatchString(r.text()) {
			t.Fatalf("--mac-binding off: %d\n%s", r.status, r.body)
		}
		if h := e.host(mac); h.Attempt != 1 || h.LastIP != otherIP {
			t.Fatalf("host after stage 2 with the binding off: %+v", h)
		}
	})
}

// TestStage2BindingEveryWrite: every stage-2 answer that would write is
// bound, not only the install script: a host waiting for a profile (facts
// and LastIP), an installed host's local boot (LastIP), discovery (a new
// record) and an unknown host enrolled with the default profile. An
// unknown MAC under "ignore" writes nothing; it is bound too, so that the
// answers do not tell a stranger which MACs are known.
func TestStage2BindingEveryWrite(t *testing.T) {
	const mac = "52:54:00:aa:00:61"
	t.Run("wait", func(t *testing.T) {
		e := newEnv(t, nil)
		e.addHost(inventory.Host{MAC: mac})
		before, events := e.hosts(), e.eventsOf(mac)
		wantRefused(t, e, e.getFrom(otherIP, "/ipxe?mac="+mac+"&serial=S1"), mac, otherIP, before, events)
	})
	t.Run("local", func(t *testing.T) {
		e := newEnv(t, nil)
		e.addHost(inventory.Host{MAC: mac, Profile: "edge"})
		_, tok := e.stage2("mac=" + mac)
		e.get("/userdata/" + tok)
		decodeCallback(t, e.post("/callback/"+tok+"/done", ""))
		before, events := e.hosts(), e.eventsOf(mac)
		wantRefused(t, e, e.getFrom(otherIP, "/ipxe?mac="+mac), mac, otherIP, before, events)
	})
	for _, tc := range []struct {
		name string
		mod  func(*api.Config)
	}{
		{"discover", func(c *api.Config) { c.Unknown = ipxe.UnknownDiscover }},
		{"default profile", func(c *api.Config) { c.Unknown, c.UnknownProfile = ipxe.UnknownProfile, "edge" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod)
			r := e.getFrom(otherIP, "/ipxe?mac="+mac)
			wantTerse(t, r, http.StatusForbidden)
			if hs := e.hosts(); len(hs) != 0 {
				t.Fatalf("a refused request created %+v", hs)
			}
			e.sawDHCP(otherIP, mac)
			if r := e.getFrom(otherIP, "/ipxe?mac="+mac); r.status != http.StatusOK {
				t.Fatalf("unknown MAC seen in DHCP: %d\n%s", r.status, r.body)
			}
			if h := e.host(mac); h.LastIP != otherIP {
				t.Fatalf("host after stage 2: %+v", h)
			}
		})
	}
	// Under ignore an unknown MAC writes nothing, but a stranger naming it
	// gets the same 403 as for a known one, so the answers do not tell
	// which MACs are in the inventory; the machine itself is told why.
	t.Run("ignore", func(t *testing.T) {
		e := newEnv(t, nil)
		e.addHost(inventory.Host{MAC: "52:54:00:aa:00:62"})
		known, unknown := e.getFrom(otherIP, "/ipxe?mac=52:54:00:aa:00:62"), e.getFrom(otherIP, "/ipxe?mac="+mac)
		wantTerse(t, known, http.StatusForbidden)
		wantTerse(t, unknown, http.StatusForbidden)
		if string(known.body) != string(unknown.body) {
			t.Fatalf("a stranger tells a known MAC from an unknown one: %q against %q", known.body, unknown.body)
		}
		e.sawDHCP(otherIP, mac)
		r := e.getFrom(otherIP, "/ipxe?mac="+mac)
		if r.status != http.StatusOK || !strings.Contains(r.text(), "not in the inventory") {
			t.Fatalf("unknown MAC under ignore, seen in DHCP: %d\n%s", r.status, r.body)
		}
		if hs := e.hosts(); len(hs) != 1 {
			t.Fatalf("stage 2 of an unknown MAC under ignore wrote %+v", hs)
		}
	})
}

// TestStage2BindingOtherNIC: a machine booting from one of its other NICs
// is bound by the evidence for that NIC (the one DHCP saw), and its
// stage 2 still lands on the host; evidence for the host's own MAC at the
// address does not vouch for a request naming the other NIC.
func TestStage2BindingOtherNIC(t *testing.T) {
	const own, other = "52:54:00:aa:00:71", "52:54:00:aa:00:72"
	e := newEnv(t, nil)
	e.opJSON(http.MethodPost, "/hosts", `{"mac":"`+own+`","profile":"edge","otherMACs":["`+other+`"]}`, http.StatusCreated, nil)
	e.sawDHCP(otherIP, own)
	before, events := e.hosts(), e.eventsOf(own)
	wantRefused(t, e, e.getFrom(otherIP, "/ipxe?mac="+other), own, otherIP, before, events)
	e.stage2From(otherIP, other)
	if h := e.host(own); h.Attempt != 1 || h.ScriptIP != otherIP {
		t.Fatalf("host after stage 2 from its other NIC: %+v", h)
	}
}

// TestStage2BindingLease: in full mode the evidence is the lease this
// server granted: the holder of the lease gets its script from the leased
// address, from no other, and no longer once the lease has expired.
func TestStage2BindingLease(t *testing.T) {
	const mac = "52:54:00:aa:00:81"
	var leases attrib.LeaseTable
	now := time.Now()
	clock := func() time.Time { return now }
	e := newEnv(t, func(c *api.Config) {
		c.Attrib = attrib.New(attrib.Config{Leases: &leases, Now: clock})
	})
	e.addHost(inventory.Host{MAC: mac})
	hw, _ := net.ParseMAC(mac)
	leases.Put(hw, netip.MustParseAddr("127.0.0.1"), now.Add(time.Minute))

	before, events := e.hosts(), e.eventsOf(mac)
	wantRefused(t, e, e.getFrom(otherIP, "/ipxe?mac="+mac), mac, otherIP, before, events)
	if r := e.getFrom("127.0.0.1", "/ipxe?mac="+mac); r.status != http.StatusOK {
		t.Fatalf("from the leased address: %d\n%s", r.status, r.body)
	}
	now = now.Add(time.Minute)
	before, events = e.hosts(), e.eventsOf(mac)
	wantRefused(t, e, e.getFrom("127.0.0.1", "/ipxe?mac="+mac), mac, "127.0.0.1", before, events)
}

// TestStage2RefusalEventsSpaced: a stranger repeating the request (or
// iPXE retrying stage 1) adds one refusal event per host and address a
// minute, not one per request; another address is another fact.
func TestStage2RefusalEventsSpaced(t *testing.T) {
	const mac = "52:54:00:aa:00:91"
	var mu sync.Mutex
	now := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	e := newEnv(t, func(c *api.Config) {
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	e.addHost(inventory.Host{MAC: mac, Profile: "edge"})
	refusals := func() (n int) {
		for _, ev := range e.eventsOf(mac) {
			if ev.Kind == "stage2-refused" {
				n++
			}
		}
		return n
	}
	for range 5 {
		if r := e.getFrom(otherIP, "/ipxe?mac="+mac); r.status != http.StatusForbidden {
			t.Fatalf("stranger: %d", r.status)
		}
	}
	if n := refusals(); n != 1 {
		t.Fatalf("5 refusals within a minute from one address: %d events, want 1", n)
	}
	e.getFrom("127.0.0.3", "/ipxe?mac="+mac)
	if n := refusals(); n != 2 {
		t.Fatalf("a refusal from another address: %d events, want 2", n)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	e.getFrom(otherIP, "/ipxe?mac="+mac)
	if n := refusals(); n != 3 {
		t.Fatalf("a refusal a minute later: %d events, want 3", n)
	}
}
