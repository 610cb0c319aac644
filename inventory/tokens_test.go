package inventory

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// tokenWorld has one host in every situation a token can be in, each
// reached through the real flow.
type tokenWorld struct {
	s *Store
	// tokens by situation
	live, rotated, reprovisioned, installed, failed, deleted string
}

const (
	macLive      = "52:54:00:00:01:01"
	macRotated   = "52:54:00:00:01:02"
	macReprov    = "52:54:00:00:01:03"
	macInstalled = "52:54:00:00:01:04"
	macFailed    = "52:54:00:00:01:05"
	macDeleted   = "52:54:00:00:01:06"
)

func newTokenWorld(t *testing.T) tokenWorld {
	t.Helper()
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	begin := func(mac string) string {
		t.Helper()
		_, tok, err := s.BeginInstall(mac, "10.0.0.5")
		if err != nil {
			t.Fatalf("BeginInstall(%s): %v", mac, err)
		}
		return tok
	}
	for _, mac := range []string{macLive, macRotated, macReprov, macInstalled, macFailed, macDeleted} {
		mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	}
	w := tokenWorld{s: s}
	w.live = begin(macLive)

	// An attempt begun before tokens were derived (no nonce) cannot
	// hand out its token again: iPXE asking again rotates it.
	w.rotated = begin(macRotated)
	forgetNonce(t, s, macRotated)
	begin(macRotated)

	w.reprovisioned = begin(macReprov)
	if _, err := s.Reprovision(macReprov); err != nil {
		t.Fatal(err)
	}

	w.installed = begin(macInstalled)
	if _, _, err := s.Complete(w.installed); err != nil {
		t.Fatal(err)
	}

	w.failed = begin(macFailed)
	if _, _, err := s.Fail(w.failed, "no disk"); err != nil {
		t.Fatal(err)
	}

	w.deleted = begin(macDeleted)
	if err := s.DeleteHost(macDeleted); err != nil {
		t.Fatal(err)
	}
	return w
}

// allEvents is every host's history, for "nothing changed" checks.
func allEvents(t *testing.T, s *Store) map[string][]Event {
	t.Helper()
	out := map[string][]Event{}
	for _, h := range mustHosts(t, s) {
		out[h.MAC] = mustEvents(t, s, h.MAC)
	}
	return out
}

// TestRefusedTokensChangeNothing presents every kind of dead or foreign
// token to each machine endpoint and checks the answer and that the
// store is exactly as before.
func TestRefusedTokensChangeNothing(t *testing.T) {
	w := newTokenWorld(t)
	s := w.s
	for _, tc := range []struct {
		name     string
		token    string
		fetch    error // FetchUserData
		done     error // Complete; nil means "answers, changes nothing"
		fail     error // Fail; nil likewise
		goneText string
	}{
		{name: "never issued", token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", fetch: ErrNotFound, done: ErrNotFound, fail: ErrNotFound},
		{name: "empty", token: "", fetch: ErrNotFound, done: ErrNotFound, fail: ErrNotFound},
		{name: "oversized", token: strings.Repeat("t", maxTokenLen+1), fetch: ErrNotFound, done: ErrNotFound, fail: ErrNotFound},
		{name: "rotated", token: w.rotated, fetch: ErrGone, done: ErrGone, fail: ErrGone, goneText: "attempt 1 of " + macRotated + " is over"},
		{name: "reprovisioned", token: w.reprovisioned, fetch: ErrGone, done: ErrGone, fail: ErrGone, goneText: "attempt 1 of " + macReprov + " is over"},
		// The live token of an attempt that ended: done repeats are
		// idempotent, a late failure cannot overwrite a success.
		{name: "installed", token: w.installed, fetch: ErrGone, done: nil, fail: ErrConflict, goneText: "attempt 1 of " + macInstalled + " is over (host is installed)"},
		{name: "failed", token: w.failed, fetch: ErrGone, done: ErrConflict, fail: nil, goneText: "attempt 1 of " + macFailed + " is over (host is failed)"},
		{name: "host deleted", token: w.deleted, fetch: ErrNotFound, done: ErrNotFound, fail: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts, events := mustHosts(t, s), allEvents(t, s)
			rendered := false
			_, _, err := s.FetchUserData(tc.token, "10.0.0.5", BindToScriptIP, func(Host, Profile) error { rendered = true; return nil })
			if !errors.Is(err, tc.fetch) {
				t.Errorf("FetchUserData err = %v, want %v", err, tc.fetch)
			}
			if rendered {
				t.Error("FetchUserData rendered for a refused token")
			}
			if tc.goneText != "" && (err == nil || !strings.Contains(err.Error(), tc.goneText)) {
				t.Errorf("FetchUserData err = %v, want it to say %q", err, tc.goneText)
			}
			_, changed, err := s.Complete(tc.token)
			if !errors.Is(err, tc.done) || (tc.done == nil && err != nil) || changed {
				t.Errorf("Complete = changed %v, err %v; want unchanged, %v", changed, err, tc.done)
			}
			_, changed, err = s.Fail(tc.token, "late report")
			if !errors.Is(err, tc.fail) || (tc.fail == nil && err != nil) || changed {
				t.Errorf("Fail = changed %v, err %v; want unchanged, %v", changed, err, tc.fail)
			}
			unchanged(t, s, hosts)
			if after := allEvents(t, s); !reflect.DeepEqual(after, events) {
				t.Errorf("events changed:\nbefore %+v\nafter  %+v", events, after)
			}
		})
	}

	// And the live one still works after all that.
	if h, _, err := s.FetchUserData(w.live, "10.0.0.5", BindToScriptIP, okRender); err != nil || h.State != StateInstalling {
		t.Fatalf("live token: %v, %v", h.State, err)
	}
}

func TestUserDataBoundToScriptIP(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:02:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	h, tok, err := s.BeginInstall(mac, "10.0.0.5")
	if err != nil || h.ScriptIP != "10.0.0.5" {
		t.Fatalf("BeginInstall = %+v, %v", h, err)
	}
	stored, _ := s.Host(mac)
	if stored.ScriptIP != "10.0.0.5" {
		t.Fatalf("stored ScriptIP %q", stored.ScriptIP)
	}

	// Another address with the live token: refused, audited, nothing else.
	hosts, events := mustHosts(t, s), mustEvents(t, s, mac)
	rendered := false
	got, _, err := s.FetchUserData(tok, "10.0.0.66", BindToScriptIP, func(Host, Profile) error { rendered = true; return nil })
	if !errors.Is(err, ErrForbidden) || rendered {
		t.Fatalf("wrong address: err = %v, rendered %v; want ErrForbidden, no render", err, rendered)
	}
	for _, want := range []string{mac, "10.0.0.66", "10.0.0.5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %s", err, want)
		}
	}
	if got.MAC != mac || got.ScriptIP != "10.0.0.5" {
		t.Errorf("refusal returned host %+v, want the bound host for the caller's log", got)
	}
	unchanged(t, s, hosts)
	after := mustEvents(t, s, mac)
	if len(after) != len(events)+1 || !reflect.DeepEqual(after[:len(events)], events) {
		t.Fatalf("events: %v → %v, want one added", kinds(events), kinds(after))
	}
	if last := after[len(after)-1]; last.Kind != "userdata-refused" || last.Attempt != 1 || !strings.Contains(last.Detail, "10.0.0.66") {
		t.Fatalf("refusal event = %+v", last)
	}

	// The address that booted, even spelled as IPv4-mapped IPv6.
	if h, _, err := s.FetchUserData(tok, "::ffff:10.0.0.5", BindToScriptIP, okRender); err != nil || h.State != StateInstalling {
		t.Fatalf("bound address: %v, %v", h.State, err)
	}

	// The VM reset and iPXE came back with a new lease: the new script
	// rebinds the attempt to the new address.
	h, tok2, err := s.BeginInstall(mac, "10.0.0.7")
	if err != nil || h.ScriptIP != "10.0.0.7" {
		t.Fatalf("rotation: %+v, %v", h, err)
	}
	if _, _, err := s.FetchUserData(tok2, "10.0.0.5", BindToScriptIP, okRender); !errors.Is(err, ErrForbidden) {
		t.Fatalf("old address after rebinding: %v", err)
	}
	// Binding off: any address with the live token.
	if _, _, err := s.FetchUserData(tok2, "10.0.0.99", AnyIP, okRender); err != nil {
		t.Fatalf("AnyIP: %v", err)
	}

	// Reprovision forgets the address; an operator cannot set one.
	if h, err := s.Reprovision(mac); err != nil || h.ScriptIP != "" {
		t.Fatalf("Reprovision = %+v, %v", h, err)
	}
	if h, err := s.UpdateHost(mac, func(h *Host) error { h.ScriptIP = "10.6.6.6"; return nil }); err != nil || h.ScriptIP != "" {
		t.Fatalf("UpdateHost set ScriptIP: %+v, %v", h, err)
	}
	if h := mustHost(t, s, Host{MAC: "52:54:00:00:02:02", Profile: "edge", ScriptIP: "10.6.6.6"}); h.ScriptIP != "" {
		t.Fatalf("CreateHost kept ScriptIP %q", h.ScriptIP)
	}

	// An attempt without a recorded address (begun by an older version,
	// or with no address known) is not locked out.
	_, tok3, err := s.BeginInstall("52:54:00:00:02:02", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.FetchUserData(tok3, "10.0.0.8", BindToScriptIP, okRender); err != nil {
		t.Fatalf("unbound attempt: %v", err)
	}
}

// forgetNonce makes mac's live attempt look begun by a version that
// stored no token nonce.
func forgetNonce(t *testing.T, s *Store, mac string) {
	t.Helper()
	err := s.eng.Update(func(tx storage.Tx) error {
		h, err := get[Host](tx, colHosts, mac, "host")
		if err != nil {
			return err
		}
		h.TokenNonce = ""
		return put(tx, colHosts, mac, h)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRetiredTokensBounded(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:03:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	// A second host's retired token must survive the first one's pruning.
	const other = "52:54:00:00:03:02"
	mustHost(t, s, Host{MAC: other, Profile: "edge"})
	_, otherOld, _ := s.BeginInstall(other, "10.0.0.9")
	if _, err := s.Reprovision(other); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.BeginInstall(other, "10.0.0.9"); err != nil {
		t.Fatal(err)
	}

	// Each attempt's token is retired when the operator reprovisions.
	const n = 3 * MaxRetiredTokens
	toks := make([]string, n)
	for i := range toks {
		var err error
		if _, toks[i], err = s.BeginInstall(mac, "10.0.0.5"); err != nil {
			t.Fatal(err)
		}
		if i < n-1 {
			if _, err := s.Reprovision(mac); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := toks[n-1]
	for i, tok := range toks[:n-1] {
		_, _, err := s.FetchUserData(tok, "10.0.0.5", BindToScriptIP, okRender)
		want := ErrNotFound
		if i >= n-1-MaxRetiredTokens {
			want = ErrGone
		}
		if !errors.Is(err, want) {
			t.Errorf("token %d of %d: err = %v, want %v", i, n, err, want)
		}
	}
	if _, _, err := s.Complete(otherOld); !errors.Is(err, ErrGone) {
		t.Errorf("other host's retired token: %v, want ErrGone", err)
	}
	if got := countTokens(t, s, mac); got != (bucketCount{live: 1, dead: MaxRetiredTokens, index: MaxRetiredTokens}) {
		t.Fatalf("stored for %s: %+v, want 1 live and %d retired", mac, got, MaxRetiredTokens)
	}

	// Delete forgets every token of the host, and only of that host.
	if err := s.DeleteHost(mac); err != nil {
		t.Fatal(err)
	}
	if got := countTokens(t, s, mac); got != (bucketCount{}) {
		t.Fatalf("after delete: %+v", got)
	}
	if _, _, err := s.Complete(live); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted host's live token: %v, want ErrNotFound", err)
	}
	if got := countTokens(t, s, other); got != (bucketCount{live: 1, dead: 1, index: 1}) {
		t.Fatalf("other host after delete: %+v", got)
	}
}

type bucketCount struct{ live, dead, index int }

func countTokens(t *testing.T, s *Store, mac string) bucketCount {
	t.Helper()
	var c bucketCount
	err := s.eng.View(func(tx storage.Tx) error {
		var err error
		tx.Scan(colTokens, "", func(k, v []byte) bool {
			var rec tokenRecord
			if rec, err = decodeTokenRecord(v); err != nil {
				return false
			}
			if rec.MAC == mac && rec.Dead {
				c.dead++
			} else if rec.MAC == mac {
				c.live++
			}
			return true
		})
		tx.Scan(colRetired, seqPrefix(mac), func(k, _ []byte) bool {
			c.index++
			return true
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A store written before retired tokens were kept maps the hash to the
// bare MAC; an attempt in flight across the upgrade must still finish.
func TestLegacyTokenRecord(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:04:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	h, tok, err := s.BeginInstall(mac, "")
	if err != nil {
		t.Fatal(err)
	}
	err = s.eng.Update(func(tx storage.Tx) error {
		tx.Put(colTokens, h.TokenHash, []byte(mac))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := s.FetchUserData(tok, "10.0.0.5", BindToScriptIP, okRender); err != nil || h.State != StateInstalling {
		t.Fatalf("legacy live token: %v, %v", h.State, err)
	}
	if _, err := s.Reprovision(mac); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Complete(tok); !errors.Is(err, ErrGone) {
		t.Fatalf("legacy token after reprovision: %v, want ErrGone", err)
	}
}

func TestSameIP(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.5", "10.0.0.5", true},
		{"10.0.0.5", "::ffff:10.0.0.5", true},
		{"10.0.0.5", "10.0.0.50", false},
		{"fe80::1", "fe80::1", true},
		{"", "", false},
		{"10.0.0.5", "", false},
		{"not-an-ip", "not-an-ip", false},
	} {
		if got := sameIP(tc.a, tc.b); got != tc.want {
			t.Errorf("sameIP(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// The token rule at the store: a live attempt hands out the same token
// again (a second seed, a repeated script), and that token is heard
// until the attempt ends; a reprovision gives the next attempt a new one
// and the old one is gone. A host deleted and created again never gets
// a token of its earlier life back.
func TestTokenKeptWhileLive(t *testing.T) {
	s := openTestStore(t)
	mustProfile(t, s, "edge")
	const mac = "52:54:00:00:05:01"
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	_, first, err := s.BeginInstall(mac, "")
	if err != nil {
		t.Fatal(err)
	}
	h, second, err := s.BeginInstall(mac, "")
	if err != nil || second != first || h.Attempt != 1 {
		t.Fatalf("second seed: attempt %d, same token %v, %v", h.Attempt, second == first, err)
	}
	if ev := mustEvents(t, s, mac); ev[len(ev)-1].Detail != "install script served again (same attempt, same token)" {
		t.Errorf("event %+v", ev[len(ev)-1])
	}
	if _, _, err := s.FetchUserData(first, "10.0.0.5", AnyIP, okRender); err != nil {
		t.Fatalf("user-data with the first token: %v", err)
	}
	if _, changed, err := s.Complete(first); err != nil || !changed {
		t.Fatalf("done with the first token: %v, %v", changed, err)
	}
	if _, err := s.Reprovision(mac); err != nil {
		t.Fatal(err)
	}
	h, third, err := s.BeginInstall(mac, "")
	if err != nil || third == first || h.Attempt != 2 {
		t.Fatalf("after reprovision: attempt %d, new token %v, %v", h.Attempt, third != first, err)
	}
	if _, _, err := s.Complete(first); !errors.Is(err, ErrGone) {
		t.Errorf("the ended attempt's token: %v, want ErrGone", err)
	}
	if err := s.DeleteHost(mac); err != nil {
		t.Fatal(err)
	}
	mustHost(t, s, Host{MAC: mac, Profile: "edge"})
	if _, again, err := s.BeginInstall(mac, ""); err != nil || again == first {
		t.Fatalf("re-created host's first attempt reuses its earlier token: %v", err)
	}
	if h, _ := s.Host(mac); h.Public().TokenNonce != "" || h.Public().TokenHash != "" {
		t.Error("Public carries the token's hash or nonce")
	}
}
