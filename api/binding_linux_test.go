package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/lab"
)

// TestStage2BindingKernel binds stage 2 through a real kernel table, with
// no DHCP at all: the server listens on the bridge of a namespace, and
// two peers on that bridge ask for the host's install script. The peer
// whose own MAC is the host's (the kernel resolved it on the serving
// interface while the TCP connection was set up) gets the script; the
// peer with another MAC naming the host gets 403 and the host an event
// naming the peer's address.
func TestStage2BindingKernel(t *testing.T) {
	n := lab.NewNet(t, "bind", "10.98.3.1/24")
	host := n.AddPeer(t, "host", "10.98.3.20/24")
	stranger := n.AddPeer(t, "stranger", "10.98.3.21/24")
	hw, err := lab.MACOf(host, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	mac := hw.String()
	ln, err := lab.ListenIn(n.NS, "tcp4", n.ServerIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, ln, func(c *api.Config) {
		c.Attrib = attrib.New(attrib.Config{Neighbours: lab.Neighbours{NS: n.NS, Device: n.Bridge}})
	})
	e.addHost(inventory.Host{MAC: mac, Profile: "edge"})

	get := func(ns string) (int, string) {
		t.Helper()
		res, err := lab.ClientIn(ns).Get(e.base + "/ipxe?mac=" + mac)
		if err != nil {
			t.Fatalf("stage 2 from %s: %v", ns, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	before, events := e.hosts(), e.eventsOf(mac)
	status, body := get(stranger)
	wantRefused(t, e, resp{status: status, body: []byte(body)}, mac, "10.98.3.21", before, events)

	status, body = get(host)
	if status != http.StatusOK || !strings.Contains(body, "config_url=") {
		t.Fatalf("the host itself (%s at 10.98.3.20): %d\n%s", mac, status, body)
	}
	if h := e.host(mac); h.Attempt != 1 || h.ScriptIP != "10.98.3.20" {
		t.Fatalf("host after stage 2: %+v", h)
	}
}
