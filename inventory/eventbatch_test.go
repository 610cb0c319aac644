package inventory

import (
	"errors"
	"testing"
)

func TestAddEvents(t *testing.T) {
	s := openTestStore(t)
	for _, mac := range []string{"aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"} {
		if _, err := s.CreateHost(Host{MAC: mac}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.AddEvents([]HostEvent{
		{MAC: "AA-BB-CC-00-00-01", Kind: "dhcp", Detail: "proxy offer"},
		{MAC: "02:00:00:00:00:99", Kind: "dhcp", Detail: "a stranger"},
		{MAC: "not a mac", Kind: "dhcp"},
		{MAC: "aa:bb:cc:00:00:02", Kind: "dhcp", Detail: "second host"},
		{MAC: "aa:bb:cc:00:00:01", Kind: "tftp", Detail: "undionly.kpxe"},
	})
	if err != nil || n != 3 {
		t.Fatalf("AddEvents = %d, %v; want 3 recorded", n, err)
	}
	kinds := func(mac string) []string {
		evs, err := s.Events(mac)
		if err != nil {
			t.Fatalf("Events(%s): %v", mac, err)
		}
		var out []string
		for _, e := range evs {
			if e.Kind != "created" {
				out = append(out, e.Kind+":"+e.Detail)
			}
		}
		return out
	}
	if got := kinds("aa:bb:cc:00:00:01"); len(got) != 2 || got[0] != "dhcp:proxy offer" || got[1] != "tftp:undionly.kpxe" {
		t.Errorf("host 1 events %q", got)
	}
	if got := kinds("aa:bb:cc:00:00:02"); len(got) != 1 || got[0] != "dhcp:second host" {
		t.Errorf("host 2 events %q", got)
	}
	if evs, err := s.Events("02:00:00:00:00:99"); len(evs) != 0 && !errors.Is(err, ErrNotFound) {
		t.Errorf("a stranger got events %v (%v)", evs, err)
	}
	// Only strangers: nothing written, no error.
	if n, err := s.AddEvents([]HostEvent{{MAC: "02:00:00:00:00:98", Kind: "dhcp"}}); n != 0 || err != nil {
		t.Errorf("strangers only: %d, %v", n, err)
	}
}
