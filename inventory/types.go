package inventory

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory/storage"
	"github.com/stagehand-dev/stagehand/userdata"
)

// Sentinel errors, matched with errors.Is.
var (
	ErrNotFound  = errors.New("not found")      // no such host, profile or token
	ErrExists    = errors.New("already exists") // a create collided with a stored key or unique name
	ErrConflict  = errors.New("conflict")       // the host's state does not allow the operation
	ErrGone      = errors.New("gone")           // the token belonged to an attempt that is over
	ErrForbidden = errors.New("forbidden")      // the request came from an address the attempt is not bound to
	ErrInvalid   = errors.New("invalid")        // validation failed; wrapped with the details
	ErrLocked    = storage.ErrLocked            // another process holds the database
)

// Facts are what the host told us about itself through iPXE (SMBIOS).
type Facts struct {
	UUID         string `json:"uuid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	BuildArch    string `json:"buildarch,omitempty"`
	Platform     string `json:"platform,omitempty"`
}

// clean is f as stored: each fact escaped and bounded (safetext.Clean).
// Facts are whatever the client put in its stage-2 query, and the CLI
// and the export show them.
func (f Facts) clean() Facts {
	for _, p := range []*string{&f.UUID, &f.Serial, &f.Manufacturer, &f.Product, &f.BuildArch, &f.Platform} {
		*p = safetext.Clean(*p, maxField)
	}
	return f
}

// Host is one appliance, keyed by its MAC.
type Host struct {
	MAC      string        `json:"mac"`
	Name     string        `json:"name,omitempty"`
	Serial   string        `json:"serial,omitempty"` // from the rack manifest
	Profile  string        `json:"profile,omitempty"`
	Site     userdata.Site `json:"site,omitempty"`
	UserData string        `json:"userdata,omitempty"` // per-host overrides, YAML
	// DHCPAddress is the IPv4 address reserved for the host in full DHCP
	// mode (dnsmasq's dhcp-host): always offered to it, never to another
	// client. Unique across hosts; "" means none. Operator-owned.
	DHCPAddress string `json:"dhcpAddress,omitempty"`
	// OtherMACs are the machine's other NICs: a server with several
	// ports may PXE-boot from one the manifest does not key it by. DHCP,
	// stage 2 and events from any of them act on this host. Each is
	// unique across the inventory (no host's MAC, no other host's
	// other MAC). Operator-owned.
	OtherMACs []string `json:"otherMACs,omitempty"`

	State   State `json:"state"`
	Attempt int   `json:"attempt"`
	// TokenHash is the hex SHA-256 of the live attempt's token. It never
	// leaves the store: the API strips it (see Public).
	TokenHash string `json:"tokenHash,omitempty"`
	// TokenNonce is the live attempt's random input to its token (see
	// tokens.go): with the inventory's secret it derives the same token
	// again for the same attempt. It never leaves the store either.
	TokenNonce string `json:"tokenNonce,omitempty"`
	// ScriptIP is the address that fetched the live attempt's install
	// script; under inventory.BindToScriptIP only it gets the user-data.
	// Empty means unbound (an attempt begun before the field existed).
	ScriptIP string `json:"scriptIP,omitempty"`

	// SelfReported: the record was made by the machine's own PXE boot
	// under --unknown-hosts discover (Store.Discover), not by an
	// operator. Records discovered before the field existed lack it and
	// are treated as an operator's.
	SelfReported bool `json:"selfReported,omitempty"`

	LastIP    string `json:"lastIP,omitempty"`
	LastArch  string `json:"lastArch,omitempty"`
	Facts     Facts  `json:"facts,omitempty"`
	FailedMsg string `json:"failedMessage,omitempty"`

	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	FirstBootAt time.Time `json:"firstBootAt,omitzero"`
	BootAt      time.Time `json:"bootAt,omitzero"`      // this attempt's install script
	InstalledAt time.Time `json:"installedAt,omitzero"` // this attempt's completion
}

// Public returns a copy safe to hand to an operator or a log: nothing
// of the live token (its hash, its nonce).
func (h Host) Public() Host {
	h.TokenHash, h.TokenNonce = "", ""
	return h
}

// Ident names the host in errors and logs: "aa:bb:… (name)".
func (h Host) Ident() string {
	if h.Name != "" {
		return h.MAC + " (" + h.Name + ")"
	}
	return h.MAC
}

// LocalBoot is how an installed host leaves iPXE for its disk.
type LocalBoot string

const (
	LocalBootExit    LocalBoot = "exit"    // return to firmware, which tries the next boot device
	LocalBootSanboot LocalBoot = "sanboot" // boot the first hard disk directly (BIOS firmware that retries PXE forever)
)

// Profile is how to install a class of hosts.
type Profile struct {
	Name string `json:"name"`
	// ISO, when set, is an installer image on the server; Kernel, Initrd
	// and RootFS are then paths inside it, read without mounting.
	ISO      string    `json:"iso,omitempty"`
	Kernel   string    `json:"kernel"`           // path on the server (or in ISO)
	Initrd   string    `json:"initrd"`           // path on the server (or in ISO)
	RootFS   string    `json:"rootfs,omitempty"` // live root image, optional
	Cmdline  string    `json:"cmdline,omitempty"`
	UserData string    `json:"userdata,omitempty"` // base user-data YAML
	Local    LocalBoot `json:"localBoot,omitempty"`
	// Timeout is how long an install attempt may take before the host
	// shows as stalled; 0 means DefaultInstallTimeout.
	Timeout Duration `json:"installTimeout,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Event is one thing that happened to a host.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Attempt int       `json:"attempt,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	// Count is how many times in a row the same event (kind, attempt
	// and detail) happened, when more than once; Last is when it last
	// did (Time stays the first). A firmware retrying, or a stranger
	// repeating a request, costs the history one event.
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"`
}

// Lease is a full-mode DHCP lease. The dhcp package has its own type;
// cmd/stagehand converts, so that neither package imports the other.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Expiry   time.Time `json:"expiry"`
	Hostname string    `json:"hostname,omitempty"`
}

// NormalizeMAC returns the canonical lower-case colon form of an
// Ethernet MAC, accepting the separators operators and iPXE use.
func NormalizeMAC(s string) (string, error) {
	s = strings.TrimSpace(s)
	hw, err := net.ParseMAC(s)
	if err != nil && len(s) == 12 { // bare hex, as some manifests carry it
		hw, err = net.ParseMAC(s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12])
	}
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%w: mac %q is not an Ethernet address", ErrInvalid, s)
	}
	return hw.String(), nil
}
