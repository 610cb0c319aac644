package server

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
)

// AdmitPolicy is the DHCP gate: with --unknown-hosts ignore, only MACs in
// the inventory (a host's own or one of its other NICs) get any answer,
// so stagehand is silent on a shared network for every machine it does
// not own. nil (admit all) otherwise.
func AdmitPolicy(store *inventory.Store, unknown ipxe.UnknownPolicy) dhcp.Policy {
	if unknown != ipxe.UnknownIgnore {
		return nil
	}
	return dhcp.PolicyFunc(func(c *dhcp.Client) bool {
		_, err := store.Resolve(c.MAC.String())
		return err == nil
	})
}

// DHCPHosts adapts the inventory to dhcp.Hosts: each call is one bbolt
// read, so reservations made through the API apply from the next packet.
func DHCPHosts(store *inventory.Store) dhcp.Hosts { return dhcpHosts{store} }

type dhcpHosts struct{ s *inventory.Store }

func (d dhcpHosts) Lookup(mac net.HardwareAddr) (netip.Addr, bool) {
	h, err := d.s.Host(mac.String())
	if err != nil {
		// One of a host's other NICs is known, but the reservation is the
		// host's own MAC's (ReservedFor names that MAC), so it takes a
		// pool address. Asked only when the MAC is no host's: the common
		// packet costs one read, as before other NICs existed.
		_, err := d.s.Resolve(mac.String())
		return netip.Addr{}, err == nil
	}
	a, _ := netip.ParseAddr(h.DHCPAddress) // validated when stored; "" is invalid
	return a, true
}

func (d dhcpHosts) ReservedFor(a netip.Addr) net.HardwareAddr {
	mac, err := d.s.ReservedFor(a.String())
	if err != nil {
		return nil
	}
	hw, _ := net.ParseMAC(mac)
	return hw
}

// leaseStore adapts the inventory to dhcp.LeaseStore, and keeps mirror
// (attribution's view of the leases) in step with every lease the DHCP
// server loads, stores durably or forgets.
type leaseStore struct {
	s      *inventory.Store
	mirror *attrib.LeaseTable
}

func (l leaseStore) Leases() ([]dhcp.Lease, error) {
	ls, err := l.s.Leases()
	if err != nil {
		return nil, err
	}
	out := make([]dhcp.Lease, 0, len(ls))
	for _, x := range ls {
		mac, err1 := net.ParseMAC(x.MAC)
		ip, err2 := netip.ParseAddr(x.IP)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, dhcp.Lease{MAC: mac, IP: ip, Expiry: x.Expiry, Hostname: x.Hostname})
		l.mirror.Put(mac, ip, x.Expiry)
	}
	return out, nil
}

func (l leaseStore) PutLease(x dhcp.Lease) error {
	err := l.s.PutLease(inventory.Lease{MAC: x.MAC.String(), IP: x.IP.String(), Expiry: x.Expiry, Hostname: x.Hostname})
	if err == nil {
		l.mirror.Put(x.MAC, x.IP, x.Expiry)
	}
	return err
}

func (l leaseStore) DeleteLease(mac net.HardwareAddr) error {
	err := l.s.DeleteLease(mac.String())
	if err == nil {
		l.mirror.Delete(mac)
	}
	return err
}

// dhcpEventDetail is the event text for one DHCP reply: the mode, the
// message (and the PXE boot server port when it came in there), the
// address, and for a boot client which one it is (the boot timeline,
// inventory.Timeline, tells the firmware's DHCP from iPXE's by it).
func dhcpEventDetail(mode string, r dhcp.Reply) string {
	d := mode + " " + r.Type.String()
	if r.Port == dhcp.DiscoveryPort {
		d += " port " + strconv.Itoa(r.Port)
	}
	if r.IP.IsValid() {
		d += " " + r.IP.String()
	}
	if r.BootFile == "" {
		// The installer's own DHCP client (or any OS): an address, no boot.
		return d + ", no boot file (not a PXE client)"
	}
	return d + " client " + bootClient(r.Client) + " arch " + r.Client.Arch.String() + " boot " + r.BootFile
}

// bootClient names a boot client for its DHCP event.
func bootClient(c dhcp.Client) string {
	switch {
	case c.IPXE:
		return inventory.DHCPClientIPXE
	case c.HTTPBoot:
		return inventory.DHCPClientHTTPBoot
	}
	return inventory.DHCPClientFirmware
}
