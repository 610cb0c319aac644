package inventory

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stagehand-dev/stagehand/userdata"
)

// A host's operator-settable fields, defined once. The manifest's CSV
// columns, ParseCSV and the import's merge, the API's host JSON
// (api.HostSpec), the CLI's host add|update flags, the export and the
// report's manifest columns are all derived from Fields; a test walks
// the table and checks every field in each of them. Adding a field is
// one entry here (and the Host struct member it reads and writes). See
// docs/ARCHITECTURE.md.

// FieldKind is how a field's text form is read: the CLI and the docs
// describe a field by it, and Set splits lists and tags by it.
type FieldKind int

const (
	KindText     FieldKind = iota // one line of text
	KindMAC                       // an Ethernet address, normalised
	KindMACList                   // MACs, ";"-separated in CSV, ","-separated on the CLI
	KindTags                      // k=v;k=v
	KindIPv4                      // an IPv4 address
	KindDocument                  // multi-line YAML; the CLI flag names a file holding it
)

// Field is one operator-settable host field.
type Field struct {
	// Name is the field's CSV column and its key in Record.Set.
	Name string
	// JSON is its path in the API's host JSON, dot-separated under
	// objects ("site.network.gateway").
	JSON string
	// Flag is its host add|update flag.
	Flag string
	Kind FieldKind
	// Secret fields are masked for display and left out of an export
	// unless secrets are asked for.
	Secret bool
	// Report is the field's column in the ready-to-ship report, "" when
	// the report does not carry it.
	Report string
	// Usage is the flag's help text.
	Usage string

	get func(*Host) string
	set func(*Host, string)
	// copy moves the field's value between hosts where the text form
	// would lose something (a tag value with ";"); nil copies the text.
	copy func(dst, src *Host)
}

// Get returns the field's text form (a CSV cell): lists joined with ";".
func (f Field) Get(h *Host) string { return f.get(h) }

// Set parses v, as a CSV cell or a flag gives it, onto h. It checks only
// what the text form needs (one line, tags as k=v); the values are
// checked once, for every path (manifest, API, CLI), by the store's
// host validation (Host.validate, userdata.ValidateSite), which names
// the host and field. The error names the field.
func (f Field) Set(h *Host, v string) error {
	if f.Kind != KindDocument {
		v = strings.TrimSpace(v)
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("field %s: must be one line", f.Name)
		}
	}
	switch f.Kind {
	case KindTags:
		if _, err := ParseTags(v); err != nil {
			return fmt.Errorf("field %s: %v", f.Name, err)
		}
	case KindMACList:
		v = strings.ReplaceAll(v, ",", ";")
	}
	f.set(h, v)
	return nil
}

// FieldByName finds a field by its Name.
func FieldByName(name string) (Field, bool) {
	for _, f := range Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// network returns h's static network settings, creating them.
func network(h *Host) *userdata.Network {
	if h.Site.Network == nil {
		h.Site.Network = &userdata.Network{}
	}
	return h.Site.Network
}

// netGet reads one network setting of a host that may have none.
func netGet(pick func(*userdata.Network) *string) func(*Host) string {
	return func(h *Host) string {
		if h.Site.Network == nil {
			return ""
		}
		return *pick(h.Site.Network)
	}
}

func netSet(pick func(*userdata.Network) *string) func(*Host, string) {
	return func(h *Host, v string) {
		*pick(network(h)) = v
		if *h.Site.Network == (userdata.Network{}) {
			h.Site.Network = nil
		}
	}
}

func splitList(v string) []string {
	var out []string
	for _, m := range strings.Split(v, ";") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// Fields is every operator-settable host field, in manifest column
// order. New fields go at the end: exports list them in this order.
var Fields = []Field{
	{Name: "mac", JSON: "mac", Kind: KindMAC, Report: "mac", Usage: "the host's MAC",
		get: func(h *Host) string { return h.MAC }, set: func(h *Host, v string) { h.MAC = v }},
	// The one name: a host renders it as stylus.site.name, and a site's
	// own name may only repeat it (Host.validate), so it is no field.
	{Name: "name", JSON: "name", Flag: "name", Report: "name", Usage: "host name (unique; becomes stylus.site.name)",
		get: func(h *Host) string { return h.Name }, set: func(h *Host, v string) { h.Name = v }},
	{Name: "serial", JSON: "serial", Flag: "serial", Report: "serial", Usage: "serial number from the manifest",
		get: func(h *Host) string { return h.Serial }, set: func(h *Host, v string) { h.Serial = v }},
	{Name: "profile", JSON: "profile", Flag: "profile", Report: "profile", Usage: "profile to install",
		get: func(h *Host) string { return h.Profile }, set: func(h *Host, v string) { h.Profile = v }},
	{Name: "paletteEndpoint", JSON: "site.paletteEndpoint", Flag: "palette-endpoint", Usage: "stylus.site.paletteEndpoint",
		get: func(h *Host) string { return h.Site.PaletteEndpoint }, set: func(h *Host, v string) { h.Site.PaletteEndpoint = v }},
	{Name: "registrationURL", JSON: "site.registrationURL", Flag: "registration-url", Usage: "stylus.site.registrationURL",
		get: func(h *Host) string { return h.Site.RegistrationURL }, set: func(h *Host, v string) { h.Site.RegistrationURL = v }},
	{Name: "projectUid", JSON: "site.projectUid", Flag: "project-uid", Usage: "stylus.site.projectUid",
		get: func(h *Host) string { return h.Site.ProjectUID }, set: func(h *Host, v string) { h.Site.ProjectUID = v }},
	{Name: "edgeHostToken", JSON: "site.edgeHostToken", Flag: "edge-host-token", Secret: true,
		Usage: "stylus.site.edgeHostToken, a secret (prefer --site FILE: a flag lands in shell history)",
		get:   func(h *Host) string { return h.Site.EdgeHostToken }, set: func(h *Host, v string) { h.Site.EdgeHostToken = v }},
	{Name: "tags", JSON: "site.tags", Flag: "tags", Kind: KindTags, Usage: "stylus.site.tags, k=v;k=v",
		get:  func(h *Host) string { return FormatTags(h.Site.Tags) },
		set:  func(h *Host, v string) { h.Site.Tags, _ = ParseTags(v) },
		copy: func(dst, src *Host) { dst.Site.Tags = maps.Clone(src.Site.Tags) }},
	{Name: "networkType", JSON: "site.network.type", Flag: "network-type", Usage: "stylus.site.network.type (static or dhcp)",
		get: netGet(func(n *userdata.Network) *string { return &n.Type }), set: netSet(func(n *userdata.Network) *string { return &n.Type })},
	{Name: "ipAddress", JSON: "site.network.ipAddress", Flag: "ip-address", Kind: KindIPv4, Usage: "static address (unique)",
		get: netGet(func(n *userdata.Network) *string { return &n.IPAddress }), set: netSet(func(n *userdata.Network) *string { return &n.IPAddress })},
	{Name: "mask", JSON: "site.network.mask", Flag: "mask", Usage: "static prefix length or netmask",
		get: netGet(func(n *userdata.Network) *string { return &n.Mask }), set: netSet(func(n *userdata.Network) *string { return &n.Mask })},
	{Name: "gateway", JSON: "site.network.gateway", Flag: "gateway", Kind: KindIPv4, Usage: "static default gateway",
		get: netGet(func(n *userdata.Network) *string { return &n.Gateway }), set: netSet(func(n *userdata.Network) *string { return &n.Gateway })},
	{Name: "nameserver", JSON: "site.network.nameserver", Flag: "nameserver", Kind: KindIPv4, Usage: "static DNS server",
		get: netGet(func(n *userdata.Network) *string { return &n.Nameserver }), set: netSet(func(n *userdata.Network) *string { return &n.Nameserver })},
	{Name: "httpProxy", JSON: "site.network.httpProxy", Flag: "http-proxy", Usage: "HTTP proxy for the site",
		get: netGet(func(n *userdata.Network) *string { return &n.HTTPProxy }), set: netSet(func(n *userdata.Network) *string { return &n.HTTPProxy })},
	{Name: "userdata", JSON: "userdata", Flag: "userdata", Kind: KindDocument, Usage: "YAML file with per-host user-data overrides",
		get: func(h *Host) string { return h.UserData }, set: func(h *Host, v string) { h.UserData = v }},
	{Name: "dhcpAddress", JSON: "dhcpAddress", Flag: "dhcp-address", Kind: KindIPv4, Report: "dhcp_address",
		Usage: "IPv4 address reserved for the host in full DHCP mode (unique; \"\" removes it)",
		get:   func(h *Host) string { return h.DHCPAddress }, set: func(h *Host, v string) { h.DHCPAddress = v }},
	{Name: "otherMACs", JSON: "otherMACs", Flag: "other-macs", Kind: KindMACList, Report: "other_macs",
		Usage: "the machine's other NICs, MAC,MAC: it may PXE-boot from any of them (each unique; \"\" removes them)",
		get:   func(h *Host) string { return strings.Join(h.OtherMACs, ";") },
		set:   func(h *Host, v string) { h.OtherMACs = splitList(v) },
		copy:  func(dst, src *Host) { dst.OtherMACs = slices.Clone(src.OtherMACs) }},
}

// MergeFields copies the fields named in set from src onto h: how a
// manifest row and an API update change a host.
func MergeFields(h *Host, src *Host, set map[string]bool) {
	for _, f := range Fields {
		switch {
		case !set[f.Name] || f.Name == "mac":
		case f.copy != nil:
			f.copy(h, src)
		default:
			f.set(h, f.get(src))
		}
	}
}
