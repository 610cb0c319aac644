package userdata

import (
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

const sitePath = "stylus.site"

// ValidateSite checks the fields of s that are set, following the seed's
// "Site" and "Site Setting Name" tables, and returns a *ValidationError
// listing every problem, or nil. A non-nil Network must be complete on its
// own (type, and for static: ipAddress, mask, gateway), since the inventory
// stores it as one unit.
//
// paletteEndpoint is not required here: a host usually inherits it from its
// profile's base user-data. Render checks it on the merged document.
func ValidateSite(s Site) error {
	var p problems
	checkSite(s, false, &p)
	return p.err()
}

// ParsePrefixLen parses a network mask written as a prefix length, 0..32.
// A dotted netmask ("255.255.255.0") is refused with a hint naming its
// prefix length: the seed's table defines mask as the prefix length, and
// guessing would hide a mistaken column in an operator's CSV.
func ParsePrefixLen(s string) (int, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty; want a prefix length 0..32")
	}
	if strings.Contains(t, ".") {
		if a, err := netip.ParseAddr(t); err == nil && a.Is4() {
			if bits, ok := netmaskBits(a); ok {
				return 0, fmt.Errorf("%q is a dotted netmask; write its prefix length %d", t, bits)
			}
			return 0, fmt.Errorf("%q is not a contiguous netmask; want a prefix length 0..32", t)
		}
		return 0, fmt.Errorf("%q is not a prefix length 0..32", short(t))
	}
	for _, r := range t {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a prefix length 0..32", short(t))
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n > 32 {
		return 0, fmt.Errorf("%q is out of range; want a prefix length 0..32", short(t))
	}
	return n, nil
}

func netmaskBits(a netip.Addr) (int, bool) {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	return ones, v == 0
}

// checkSite appends the problems of s to p. requireEndpoint is set for the
// merged document, where paletteEndpoint is mandatory.
func checkSite(s Site, requireEndpoint bool, p *problems) {
	f := func(name string) string { return sitePath + "." + name }

	switch {
	case s.PaletteEndpoint == "" && requireEndpoint:
		p.add(f("paletteEndpoint"), "required: the Palette management endpoint, e.g. api.spectrocloud.com")
	case s.PaletteEndpoint != "":
		if reason := checkEndpoint(s.PaletteEndpoint); reason != "" {
			p.add(f("paletteEndpoint"), "%s", reason)
		}
	}
	if s.Name != "" {
		if reason := checkName(s.Name); reason != "" {
			p.add(f("name"), "%s", reason)
		}
	}
	if s.RegistrationURL != "" {
		if reason := checkHTTPURL(s.RegistrationURL); reason != "" {
			p.add(f("registrationURL"), "%s", reason)
		}
	}
	if s.ProjectUID != "" && !isToken(s.ProjectUID) {
		p.add(f("projectUid"), "must be a single word of printable characters")
	}
	// The token's value never appears in a reason.
	if s.EdgeHostToken != "" && !isToken(s.EdgeHostToken) {
		p.add(f("edgeHostToken"), "must be a single word of printable characters (value withheld)")
	}
	keys := make([]string, 0, len(s.Tags))
	for k := range s.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.Tags[k]
		switch {
		case strings.TrimSpace(k) == "":
			p.add(f("tags"), "tag keys must be non-empty")
		case !isText(k):
			p.add(f("tags"), "tag key %q has control characters or invalid UTF-8", short(k))
		case !isText(v):
			p.add(f("tags."+k), "value has control characters or invalid UTF-8")
		}
	}
	if s.Network != nil {
		checkNetwork(*s.Network, p)
	}
}

// checkNetwork follows the seed's "Site Setting Name" table.
func checkNetwork(n Network, p *problems) {
	f := func(name string) string { return sitePath + ".network." + name }

	switch n.Type {
	case "dhcp", "static":
	case "":
		p.add(f("type"), `required: "dhcp" or "static"`)
	default:
		p.add(f("type"), `must be "dhcp" or "static", not %q`, short(n.Type))
	}

	var ip netip.Addr
	ipOK := false
	if n.IPAddress != "" {
		a, err := netip.ParseAddr(n.IPAddress)
		if err != nil || !a.Is4() {
			p.add(f("ipAddress"), "%q is not an IPv4 address", short(n.IPAddress))
		} else {
			ip, ipOK = a, true
		}
	} else if n.Type == "static" {
		p.add(f("ipAddress"), "required when type is static")
	}

	bits, bitsOK := 0, false
	if n.Mask != "" {
		b, err := ParsePrefixLen(n.Mask)
		if err != nil {
			p.add(f("mask"), "%s", err.Error())
		} else {
			bits, bitsOK = b, true
		}
	} else if n.Type == "static" {
		p.add(f("mask"), "required when type is static: the prefix length, e.g. 24")
	}

	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		switch {
		case err != nil || !gw.Is4():
			p.add(f("gateway"), "%q is not an IPv4 address", short(n.Gateway))
		case ipOK && bitsOK:
			pfx := netip.PrefixFrom(ip, bits).Masked()
			switch {
			case gw == ip:
				p.add(f("gateway"), "%s is the host's own ipAddress", gw)
			case !pfx.Contains(gw):
				p.add(f("gateway"), "%s is outside %s (ipAddress/mask)", gw, pfx)
			}
		}
	} else if n.Type == "static" {
		p.add(f("gateway"), "required when type is static")
	}

	// With a prefix shorter than /31 the first and last addresses are the
	// network and broadcast addresses, never a host's (RFC 3021 covers /31).
	if ipOK && bitsOK && bits < 31 {
		pfx := netip.PrefixFrom(ip, bits).Masked()
		if ip == pfx.Addr() {
			p.add(f("ipAddress"), "%s is the network address of %s", ip, pfx)
		} else if ip == lastAddr(pfx) {
			p.add(f("ipAddress"), "%s is the broadcast address of %s", ip, pfx)
		}
	}

	if n.Nameserver != "" {
		if _, err := netip.ParseAddr(n.Nameserver); err != nil {
			p.add(f("nameserver"), "%q is not an IP address", short(n.Nameserver))
		}
	}
	if n.HTTPProxy != "" {
		if reason := checkHTTPURL(n.HTTPProxy); reason != "" {
			p.add(f("httpProxy"), "%s", reason)
		}
	}
}

func lastAddr(pfx netip.Prefix) netip.Addr {
	b := pfx.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<(32-pfx.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkEndpoint accepts a host name, host:port, or an http(s) URL: the seed
// writes a bare host ("api.spectrocloud.com") but installers also take URLs.
func checkEndpoint(s string) string {
	if !isToken(s) {
		return "must be a host name or URL without spaces or control characters"
	}
	if strings.Contains(s, "://") {
		return checkHTTPURL(s)
	}
	if len(s) > 253 {
		return "host name is longer than 253 characters"
	}
	return ""
}

// checkName: the seed asks for a globally unique device identifier; keep it
// to what is safe as a host name and in a URL path.
func checkName(s string) string {
	if len(s) > 63 {
		return fmt.Sprintf("%d characters; at most 63", len(s))
	}
	for i, r := range s {
		alnum := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if alnum || (i > 0 && (r == '-' || r == '.' || r == '_')) {
			continue
		}
		return fmt.Sprintf("%q: use letters, digits, '-', '.' and '_', starting with a letter or digit", short(s))
	}
	return ""
}

// checkHTTPURL returns why s is not an absolute http or https URL with a
// host, or "". It never echoes s: a proxy URL may carry credentials.
func checkHTTPURL(s string) string {
	if !isToken(s) {
		return "must be a URL without spaces or control characters"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a valid URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must be an http:// or https:// URL"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "URL has no host"
	}
	return ""
}

// isToken: valid UTF-8, no whitespace, no control characters.
func isToken(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// isText: valid UTF-8 without control characters (spaces allowed).
func isText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// short bounds a value echoed in an error reason.
func short(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// siteFromDoc reads stylus.site from a merged document into a Site so that
// the same checks apply to what Base and Overrides wrote. Known fields that
// are not scalars are reported here.
func siteFromDoc(site *yaml.Node, p *problems) Site {
	var s Site
	str := func(m *yaml.Node, key, path string) string {
		v := lookup(m, key)
		if v == nil || isNull(v) {
			return ""
		}
		if v.Kind != yaml.ScalarNode {
			p.add(path+"."+key, "must be a scalar, not a %s", kindName(v))
			return ""
		}
		return v.Value
	}
	s.PaletteEndpoint = str(site, "paletteEndpoint", sitePath)
	s.Name = str(site, "name", sitePath)
	s.RegistrationURL = str(site, "registrationURL", sitePath)
	s.ProjectUID = str(site, "projectUid", sitePath)
	s.EdgeHostToken = str(site, "edgeHostToken", sitePath)

	if tags := lookup(site, "tags"); tags != nil && !isNull(tags) {
		if tags.Kind != yaml.MappingNode {
			p.add(sitePath+".tags", "must be a mapping of tag name to value, not a %s", kindName(tags))
		} else {
			s.Tags = make(map[string]string, len(tags.Content)/2)
			for i := 0; i+1 < len(tags.Content); i += 2 {
				k, v := tags.Content[i], tags.Content[i+1]
				if k.Kind != yaml.ScalarNode {
					p.add(sitePath+".tags", "tag keys must be scalars")
					continue
				}
				if v.Kind != yaml.ScalarNode {
					p.add(sitePath+".tags."+k.Value, "must be a scalar, not a %s", kindName(v))
					continue
				}
				val := v.Value
				if isNull(v) {
					val = ""
				}
				s.Tags[k.Value] = val
			}
		}
	}

	if nw := lookup(site, "network"); nw != nil && !isNull(nw) {
		if nw.Kind != yaml.MappingNode {
			p.add(sitePath+".network", "must be a mapping, not a %s", kindName(nw))
		} else {
			np := sitePath + ".network"
			s.Network = &Network{
				Type:       str(nw, "type", np),
				IPAddress:  str(nw, "ipAddress", np),
				Mask:       str(nw, "mask", np),
				Gateway:    str(nw, "gateway", np),
				Nameserver: str(nw, "nameserver", np),
				HTTPProxy:  str(nw, "httpProxy", np),
			}
		}
	}
	return s
}
