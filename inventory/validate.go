package inventory

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/userdata"
)

var timeZero time.Time

func isErr(err, target error) bool { return errors.Is(err, target) }

// Bounds on operator input, so one bad request cannot bloat the store.
const (
	maxField    = 256
	maxUserData = 256 << 10
	maxCmdline  = 4096
)

var profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks a profile before it is stored. Artifact paths must be
// absolute and readable now: finding out at boot time is too late.
func (p *Profile) Validate() error {
	var errs []string
	add := func(field, reason string) { errs = append(errs, "field "+field+": "+reason) }
	if !profileName.MatchString(p.Name) {
		add("name", "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	p.ApplyISODefaults()
	if p.ISO != "" {
		p.validateISO(add)
	}
	for _, a := range []struct{ field, path string }{{"kernel", p.Kernel}, {"initrd", p.Initrd}, {"rootfs", p.RootFS}} {
		if a.path == "" {
			if a.field != "rootfs" {
				add(a.field, "required")
			}
			continue
		}
		if p.ISO != "" {
			continue // a path inside the image, checked by validateISO
		}
		if !strings.HasPrefix(a.path, "/") {
			add(a.field, fmt.Sprintf("%q is not an absolute path", a.path))
			continue
		}
		if st, err := os.Stat(a.path); err != nil {
			add(a.field, fmt.Sprintf("cannot read %s: %v", a.path, errors.Unwrap(err)))
		} else if !st.Mode().IsRegular() {
			add(a.field, a.path+" is not a regular file")
		}
	}
	if len(p.Cmdline) > maxCmdline || strings.ContainsAny(p.Cmdline, "\n\r") {
		add("cmdline", fmt.Sprintf("must be one line of at most %d bytes", maxCmdline))
	}
	if len(p.UserData) > maxUserData {
		add("userdata", fmt.Sprintf("larger than %d bytes", maxUserData))
	}
	switch p.Local {
	case "":
		p.Local = LocalBootExit
	case LocalBootExit, LocalBootSanboot:
	default:
		add("localBoot", fmt.Sprintf("%q is not exit or sanboot", p.Local))
	}
	if p.UserData != "" {
		if _, err := userdata.Render(userdata.Input{Base: []byte(p.UserData), Site: userdata.Site{PaletteEndpoint: "placeholder.invalid"}, CallbackURL: "http://placeholder.invalid/callback/x"}); err != nil {
			add("userdata", err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: profile %s: %s", ErrInvalid, p.Name, strings.Join(errs, "; "))
	}
	return nil
}

// validate checks a host before it is stored, and brings its fields to
// their one stored form (canonical addresses, the name in Name only).
func (h *Host) validate() error {
	var errs []string
	add := func(field, reason string) { errs = append(errs, "field "+field+": "+reason) }
	if reason := hostMACReason(h.MAC); reason != "" {
		add("mac", reason)
	}
	// One name: Name is what the host renders as stylus.site.name and what
	// the names index keeps unique. A site's own name may only repeat it,
	// or give it when Name is empty; it is not stored apart from it.
	if sn := strings.TrimSpace(h.Site.Name); sn != "" {
		switch {
		case h.Name == "":
			h.Name = sn
		case sn != h.Name:
			add("site.name", fmt.Sprintf("%q differs from the host's name %q: the host has one name (set name, and leave site.name out)", sn, h.Name))
		}
	}
	h.Site.Name = ""
	h.Facts = h.Facts.clean() // a discovered host is created with what it reported
	if len(h.Name) > 63 || (h.Name != "" && !profileName.MatchString(h.Name)) {
		add("name", "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(h.Serial) > maxField || strings.ContainsAny(h.Serial, "\x00\n\r") {
		add("serial", fmt.Sprintf("must be one line of at most %d bytes", maxField))
	}
	if len(h.UserData) > maxUserData {
		add("userdata", fmt.Sprintf("larger than %d bytes", maxUserData))
	}
	if err := userdata.ValidateSite(h.Site); err != nil {
		errs = append(errs, err.Error())
	}
	if h.DHCPAddress != "" {
		a, reason := normalizeDHCPAddress(h.DHCPAddress)
		if reason != "" {
			add("dhcpAddress", reason)
		}
		h.DHCPAddress = a
	}
	if macs, reason := normalizeOtherMACs(h.MAC, h.OtherMACs); reason != "" {
		add("otherMACs", reason)
	} else {
		h.OtherMACs = macs
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: host %s: %s", ErrInvalid, h.Ident(), strings.Join(errs, "; "))
	}
	return nil
}

// MaxOtherMACs bounds a host's other NICs: servers have a handful of
// ports, and each one is an index entry.
const MaxOtherMACs = 8

// normalizeOtherMACs returns the canonical, sorted form of a host's
// other MACs (nil for none), or why they cannot be: not a MAC, the host's
// own MAC, listed twice, or too many.
func normalizeOtherMACs(own string, macs []string) ([]string, string) {
	if len(macs) == 0 {
		return nil, ""
	}
	if len(macs) > MaxOtherMACs {
		return nil, fmt.Sprintf("at most %d, got %d", MaxOtherMACs, len(macs))
	}
	out := make([]string, 0, len(macs))
	for _, m := range macs {
		n, err := NormalizeMAC(m)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a MAC address", m)
		}
		if n == own {
			return nil, n + " is the host's own MAC"
		}
		if reason := hostMACReason(n); reason != "" {
			return nil, reason
		}
		if slices.Contains(out, n) {
			return nil, n + " is listed twice"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, ""
}

// hostMACReason says why a normalized MAC cannot be a NIC's own address,
// or "": broadcast, all-zero and multicast (I/G bit set) addresses are
// never a station's source address, so a host keyed by one could never
// be matched by a DHCP request.
func hostMACReason(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return fmt.Sprintf("%q is not an Ethernet address", mac)
	}
	switch {
	case mac == "ff:ff:ff:ff:ff:ff":
		return mac + " is the broadcast address, not a NIC's"
	case mac == "00:00:00:00:00:00":
		return mac + " is the all-zero address, not a NIC's"
	case hw[0]&1 == 1:
		return mac + " is a multicast address (I/G bit set), not a NIC's"
	}
	return ""
}

// normalizeDHCPAddress returns the canonical form of a reserved address,
// or why it cannot be one. Whether it lies in the served subnet is the
// DHCP server's check: the subnet is a flag of the running server.
func normalizeDHCPAddress(s string) (string, string) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	switch {
	case err != nil || !a.Is4():
		return s, fmt.Sprintf("%q is not an IPv4 address", s)
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return s, fmt.Sprintf("%s cannot be a host's address (unspecified, loopback, multicast or broadcast)", a)
	}
	return a.String(), ""
}

// checkRender renders the host's configuration against its profile, so
// that a host the installer would be handed an invalid document for is
// never stored: the operator hears about it now, not at boot time.
func checkRender(tx storage.Tx, h *Host) error {
	if h.Profile == "" {
		return nil
	}
	p, err := get[Profile](tx, colProfiles, h.Profile, "profile")
	if err != nil {
		return fmt.Errorf("host %s: field profile: %w", h.Ident(), err)
	}
	return checkRenderWith(h, &p)
}

// checkRenderWith is checkRender with the profile in hand.
func checkRenderWith(h *Host, p *Profile) error {
	_, err := userdata.Render(userdata.Input{
		Base: []byte(p.UserData), Overrides: []byte(h.UserData), Site: h.Site, HostName: h.Name,
		CallbackURL: "http://stagehand.invalid/callback/check",
	})
	if err != nil {
		return fmt.Errorf("host %s: %v", h.Ident(), err)
	}
	return nil
}
