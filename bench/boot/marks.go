package boot

import (
	"net"
	"net/netip"
	"strings"
	"time"
)

// Milestone is one point of a boot, as the observer sees it.
type Milestone struct {
	Name string
	What string // how it is recognised, for the report
}

// Milestones in boot order. The glue serves the same paths as stagehand
// (see boot_test.go), so one table recognises both. "off" comes from the
// harness, not from the wire: QEMU's exit when the stand-in powers off.
var Milestones = []Milestone{
	{"dhcp", "iPXE's DHCP ACK (the first ACK to the VM's MAC with an address)"},
	{"script", "`GET /boot.ipxe`"},
	{"kernel", "`GET /artifacts/…/kernel`"},
	{"initrd", "`GET /artifacts/…/initrd`"},
	{"linux-dhcp", "the stand-in's DHCP ACK (the first ACK after the initrd request)"},
	{"userdata", "`GET /userdata/…`"},
	{"installed", "`POST /callback/…/done`"},
	{"off", "QEMU exits: the stand-in powered the VM off"},
}

// Marks are one boot's milestones in seconds since power-on, with the
// IPv6 router solicitations the VM sent before its first HTTP request and
// the advertisements seen on the bridge (from anyone) in that time.
type Marks struct {
	At     map[string]float64 `json:"at"`
	RS     int                `json:"routerSolicitations"`
	RA     int                `json:"routerAdvertisements"`
	FirstR float64            `json:"firstRA,omitempty"` // seconds since power-on of the first RA, 0 if none
}

// MarksOf reads the milestones of the VM with mac out of the events
// (ParseTcpdump), relative to powerOn; off is QEMU's exit (zero: none).
func MarksOf(ev []Event, mac string, powerOn, off time.Time) Marks {
	m := Marks{At: map[string]float64{}}
	ll := LinkLocal(mac)
	set := func(name string, t time.Time) {
		if _, ok := m.At[name]; !ok {
			m.At[name] = t.Sub(powerOn).Seconds()
		}
	}
	for _, e := range ev {
		_, httpSeen := m.At["script"]
		switch e.Kind {
		case DHCPAck:
			if !strings.EqualFold(e.MAC, mac) {
				continue
			}
			if _, ok := m.At["initrd"]; ok {
				set("linux-dhcp", e.At)
			} else {
				set("dhcp", e.At)
			}
		case RouterSol:
			if e.Src == ll && !httpSeen {
				m.RS++
			}
		case RouterAdv:
			if !httpSeen {
				m.RA++
				if m.FirstR == 0 {
					m.FirstR = e.At.Sub(powerOn).Seconds()
				}
			}
		case HTTPRequest:
			if name := requestMilestone(e.Method, e.Path); name != "" {
				set(name, e.At)
			}
		}
	}
	if !off.IsZero() {
		set("off", off)
	}
	return m
}

// LinkLocal returns the EUI-64 link-local address of mac (iPXE's source
// address for its router solicitations), as tcpdump prints it; "" for a
// malformed MAC.
func LinkLocal(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ""
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	copy(a[8:11], hw[:3])
	a[8] ^= 0x02
	a[11], a[12] = 0xff, 0xfe
	copy(a[13:], hw[3:])
	return netip.AddrFrom16(a).String()
}

// requestMilestone names the milestone an HTTP request marks, "" for
// none (stagehand's stage 2, a retry of something already marked).
func requestMilestone(method, path string) string {
	switch {
	case method == "GET" && path == "/boot.ipxe":
		return "script"
	case method == "GET" && strings.HasPrefix(path, "/artifacts/") && strings.HasSuffix(path, "/kernel"):
		return "kernel"
	case method == "GET" && strings.HasPrefix(path, "/artifacts/") && strings.HasSuffix(path, "/initrd"):
		return "initrd"
	case method == "GET" && strings.HasPrefix(path, "/userdata/"):
		return "userdata"
	case method == "POST" && strings.HasPrefix(path, "/callback/") && strings.HasSuffix(path, "/done"):
		return "installed"
	}
	return ""
}
