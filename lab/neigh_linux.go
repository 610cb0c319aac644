package lab

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/stagehand-dev/stagehand/neigh"
)

// Neighbours is the kernel's neighbour table of namespace NS on Device,
// read from a thread switched into NS: what a stagehand serving in NS
// reads at /proc/net/arp (neigh.Table), for a server the test runs in its
// own process. It implements attrib.Neighbours.
type Neighbours struct{ NS, Device string }

// Lookup reads the table afresh.
func (n Neighbours) Lookup(ip netip.Addr) (net.HardwareAddr, bool, error) {
	var (
		mac net.HardwareAddr
		ok  bool
	)
	err := InNS(n.NS, func() error {
		var err error
		mac, ok, err = neigh.Table{Path: "/proc/thread-self/net/arp", Device: n.Device}.Lookup(ip)
		return err
	})
	return mac, ok, err
}

// MACOf returns the MAC of dev in namespace ns.
func MACOf(ns, dev string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := InNS(ns, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err == nil {
			mac = ifc.HardwareAddr
		}
		return err
	})
	return mac, err
}

// ClientIn returns an HTTP client whose connections are opened inside
// namespace ns, as a host there would open them.
func ClientIn(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNS(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       dial,
			DisableKeepAlives: true,
		},
		Timeout: 10 * time.Second,
	}
}
