package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/stagehand-dev/stagehand/dhcp"
)

// rangeSpec is one --dhcp-range as given: START-END[/PREFIX] and its
// router= and dns= keys.
type rangeSpec struct {
	text       string // as given, for errors
	start, end netip.Addr
	bits       int // 0: the interface's prefix length
	router     netip.Addr
	dns        []netip.Addr
}

// rangeFlag is --dhcp-range. It may be repeated, and one value (the
// environment variable, a YAML list joined by fillFlags) may hold
// several ranges: in a comma-separated list, START-END[/PREFIX] begins
// a range and router=IP, dns=IP (repeatable) belong to the range before
// them. The YAML keys are these same strings.
type rangeFlag []rangeSpec

func (f *rangeFlag) String() string {
	if f == nil {
		return ""
	}
	texts := make([]string, len(*f))
	for i, r := range *f {
		texts[i] = r.text
	}
	return strings.Join(texts, ",")
}

// Set adds the ranges in v.
func (f *rangeFlag) Set(v string) error {
	rs, err := parseRanges(v)
	if err != nil {
		return err
	}
	*f = append(*f, rs...)
	return nil
}

// maxRangeText bounds one --dhcp-range value: a few hundred ranges.
const maxRangeText = 16 << 10

func parseRanges(s string) ([]rangeSpec, error) {
	if len(s) > maxRangeText {
		return nil, fmt.Errorf("--dhcp-range: %d bytes, more than %d", len(s), maxRangeText)
	}
	var out []rangeSpec
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		key, val, isKey := strings.Cut(f, "=")
		if !isKey {
			r, err := parseSpan(f)
			if err != nil {
				return nil, fmt.Errorf("--dhcp-range %q: %w", f, err)
			}
			out = append(out, r)
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("--dhcp-range %q: %s= before any START-END", s, key)
		}
		r := &out[len(out)-1]
		r.text += "," + f
		if err := r.setKey(strings.TrimSpace(key), strings.TrimSpace(val)); err != nil {
			return nil, fmt.Errorf("--dhcp-range %q: %w", r.text, err)
		}
	}
	return out, nil
}

// parseSpan parses START-END[/PREFIX].
func parseSpan(f string) (rangeSpec, error) {
	r := rangeSpec{text: f}
	span, pfx, hasPfx := strings.Cut(f, "/")
	a, b, ok := strings.Cut(span, "-")
	var err1, err2 error
	r.start, err1 = netip.ParseAddr(strings.TrimSpace(a))
	r.end, err2 = netip.ParseAddr(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || !r.start.Is4() || !r.end.Is4() || r.end.Less(r.start) {
		return r, errors.New("want START-END[/PREFIX], two IPv4 addresses in order")
	}
	if hasPfx {
		n, err := strconv.Atoi(strings.TrimSpace(pfx))
		if err != nil || n < 8 || n > 30 {
			return r, fmt.Errorf("prefix /%s: want a length 8-30", pfx)
		}
		r.bits = n
	}
	return r, nil
}

func (r *rangeSpec) setKey(key, val string) error {
	a, err := netip.ParseAddr(val)
	if err != nil || !a.Is4() {
		return fmt.Errorf("%s=%q is not an IPv4 address", key, val)
	}
	switch key {
	case "router":
		if r.router.IsValid() {
			return errors.New("router= given twice")
		}
		r.router = a
	case "dns":
		r.dns = append(r.dns, a)
	default:
		return fmt.Errorf("unknown key %q (want router= or dns=)", key)
	}
	return nil
}

// dhcpRanges turns the specs into dhcp.Ranges for a server at sip whose
// interface has the prefix local. A range without /PREFIX must lie in
// the local subnet; a range in the local subnet takes --dhcp-router and
// --dhcp-dns unless it names its own. The result is checked
// (dhcp.CheckRanges) and a refusal names the range as given.
func dhcpRanges(specs []rangeSpec, local netip.Prefix, router netip.Addr, dns []netip.Addr) ([]dhcp.Range, error) {
	if len(specs) == 0 {
		return nil, errors.New("--dhcp-range: full mode needs at least one, START-END or START-END/PREFIX,router=IP")
	}
	out := make([]dhcp.Range, len(specs))
	// names are the ranges as given, with the flags they took values from.
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = fmt.Sprintf("--dhcp-range %q", s.text)
		r := dhcp.Range{Start: s.start, End: s.end, Subnet: local.Masked(), Router: s.router, DNS: s.dns}
		if s.bits != 0 {
			r.Subnet = netip.PrefixFrom(s.start, s.bits).Masked()
		}
		switch {
		case s.bits == 0 && !(local.Contains(s.start) && local.Contains(s.end)):
			return nil, fmt.Errorf("--dhcp-range %q: outside the interface's subnet %v; for a subnet behind a relay add /PREFIX,router=IP (e.g. %v-%v/24,router=ROUTER)", s.text, local.Masked(), s.start, s.end)
		case r.Subnet.Contains(local.Addr()):
			if !r.Router.IsValid() && router.IsValid() {
				r.Router = router
				names[i] += fmt.Sprintf(" (router from --dhcp-router %v)", router)
			}
			if r.DNS == nil {
				r.DNS = dns
			}
		case !r.Router.IsValid():
			return nil, fmt.Errorf("--dhcp-range %q: a subnet behind a relay needs router=IP, its hosts' way to this server", s.text)
		}
		out[i] = r
	}
	if err := dhcp.CheckRanges(out, local.Addr()); err != nil {
		var re *dhcp.RangeError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%s: %w", names[re.Index], re.Err)
		}
		return nil, fmt.Errorf("--dhcp-range: %w", err)
	}
	return out, nil
}

// localPrefix is the served address with its interface's prefix length.
func localPrefix(iface string, addr netip.Addr) (netip.Prefix, error) {
	m, err := ifaceMask(iface, addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	ones, _ := m.Size()
	return netip.PrefixFrom(addr, ones), nil
}

// addrs converts parsed IPv4 addresses.
func addrs(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		a, _ := netip.AddrFromSlice(ip.To4())
		out = append(out, a)
	}
	return out
}
