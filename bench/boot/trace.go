// Package boot is the real-VM boot benchmark of make bench
// (bench/boot/run.sh): one VM boots from power-on to installed through
// stagehand and through the dnsmasq + nginx glue on the same bridge, and
// every phase is timed from what one observer, tcpdump on the bridge,
// saw on the wire. This file reads tcpdump's output; report.go turns the
// runs into docs/bench/boot.md; the VM runs are in boot_test.go (build
// tag bootbench).
package boot

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TcpdumpArgs are the arguments of the observer: on every interface of
// the namespace (-i any, so the VM's tap is watched from the moment it
// exists), every DHCP packet, every IPv6 router solicitation and
// advertisement, and the client's HTTP request segments (PSH towards
// port), with kernel timestamps as seconds since the epoch and the
// payload in ASCII. The artifacts' data segments go the other way and are
// not captured. The tap rather than the bridge: a bridge that snoops MLD
// does not pass the solicitations to its own port once someone on the
// link has joined all-routers (the RA sender does).
func TcpdumpArgs(port int) []string {
	filter := "udp port 67 or udp port 68 or (icmp6 and (ip6[40] == 133 or ip6[40] == 134)) or " +
		"(tcp dst port " + strconv.Itoa(port) + " and (tcp[tcpflags] & tcp-push != 0))"
	return []string{"-i", "any", "-n", "-tt", "-l", "-v", "-A", "-s", "700", filter}
}

// Kind is what a captured packet was.
type Kind string

// The packets the benchmark times.
const (
	DHCPAck     Kind = "dhcp-ack" // a DHCP ACK that hands out an address (Your-IP set)
	RouterSol   Kind = "rs"       // an ICMPv6 router solicitation
	RouterAdv   Kind = "ra"       // an ICMPv6 router advertisement
	HTTPRequest Kind = "http"     // the first segment of an HTTP request
)

// Event is one captured packet the benchmark cares about.
type Event struct {
	At     time.Time
	Iface  string // where tcpdump saw it
	Kind   Kind
	MAC    string // DHCP: the client hardware address
	Src    string // ICMPv6: the source address
	Method string // HTTP
	Path   string // HTTP
}

var (
	headRe = regexp.MustCompile(`^(\d{9,11})\.(\d{6}) (\S+) +(?:In|Out|B|M|P) +IP6? `)
	chRe   = regexp.MustCompile(`Client-Ethernet-Address ([0-9a-f:]{17})`)
	icmpRe = regexp.MustCompile(`(\S+) > \S+: .*ICMP6, router (solicitation|advertisement)`)
	reqRe  = regexp.MustCompile(`(GET|POST|HEAD) (/\S*) HTTP/1\.[01]`)
)

// ParseTcpdump reads tcpdump -i any -tt -v -A output (TcpdumpArgs) and
// returns the events seen on iface in capture order. A packet is the
// timestamp line and every line up to the next one.
func ParseTcpdump(r io.Reader, iface string) ([]Event, error) {
	var out []Event
	var cur *packet
	flush := func() {
		if cur != nil && cur.iface == iface {
			if e, ok := cur.event(); ok {
				out = append(out, e)
			}
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := headRe.FindStringSubmatch(line); m != nil {
			flush()
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			usec, _ := strconv.ParseInt(m[2], 10, 64)
			cur = &packet{at: time.Unix(sec, usec*1000), iface: m[3]}
		}
		if cur != nil {
			cur.add(line)
		}
	}
	flush()
	return out, sc.Err()
}

// packet gathers what the lines of one captured packet say.
type packet struct {
	at           time.Time
	iface        string
	ack, yourIP  bool
	rs, ra       bool
	mac, src     string
	method, path string
}

func (p *packet) add(line string) {
	switch {
	case strings.Contains(line, "DHCP-Message (53), length 1: ACK"):
		p.ack = true
	case strings.Contains(line, "Your-IP "):
		p.yourIP = true
	}
	if m := icmpRe.FindStringSubmatch(line); m != nil {
		p.src = m[1]
		p.rs, p.ra = m[2] == "solicitation", m[2] == "advertisement"
	}
	if m := chRe.FindStringSubmatch(line); m != nil {
		p.mac = m[1]
	}
	if p.method == "" {
		if m := reqRe.FindStringSubmatch(line); m != nil {
			p.method, p.path = m[1], m[2]
		}
	}
}

func (p *packet) event() (Event, bool) {
	e := Event{At: p.at, Iface: p.iface, MAC: p.mac, Src: p.src, Method: p.method, Path: p.path}
	switch {
	case p.ack && p.yourIP:
		e.Kind = DHCPAck
	case p.rs:
		e.Kind = RouterSol
	case p.ra:
		e.Kind = RouterAdv
	case p.method != "":
		e.Kind = HTTPRequest
	default:
		return e, false
	}
	return e, true
}
