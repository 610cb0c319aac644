package inventory

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultInstallTimeout is how long an attempt may take before the host
// counts as stalled, for profiles that do not say. A Palette install
// pulls an OS image of a few GB; an hour covers a slow site link.
const DefaultInstallTimeout = time.Hour

// InstallTimeout is the profile's, or the default.
func (p Profile) InstallTimeout() time.Duration {
	if p.Timeout > 0 {
		return time.Duration(p.Timeout)
	}
	return DefaultInstallTimeout
}

// Stalled reports whether h's attempt has run longer than timeout:
// booting or installing with no word from the installer.
func Stalled(h Host, timeout time.Duration, now time.Time) bool {
	return h.State.Live() && !h.BootAt.IsZero() && now.Sub(h.BootAt) > timeout
}

// ReportRow is one host in the ready-to-ship report.
type ReportRow struct {
	MAC             string    `json:"mac"`
	Name            string    `json:"name,omitempty"`
	Serial          string    `json:"serial,omitempty"`       // from the manifest
	SMBIOSSerial    string    `json:"smbiosSerial,omitempty"` // as the host reported it
	Profile         string    `json:"profile,omitempty"`
	State           string    `json:"state"`
	Stalled         bool      `json:"stalled"`
	Attempt         int       `json:"attempt"`
	FirstBoot       time.Time `json:"firstBoot,omitzero"`
	InstalledAt     time.Time `json:"installedAt,omitzero"`
	InstallDuration string    `json:"installDuration,omitempty"`
	InstallSeconds  float64   `json:"installSeconds,omitempty"`
	LastIP          string    `json:"lastIP,omitempty"`
	FailedMessage   string    `json:"failedMessage,omitempty"`
	// DHCPAddress is the host's full-DHCP reservation: the address a
	// shipping label or the site's own DHCP plan may need.
	DHCPAddress string `json:"dhcpAddress,omitempty"`
	// OtherMACs are the host's other NICs (Host.OtherMACs); CSV column
	// other_macs, ";"-separated.
	OtherMACs []string `json:"otherMACs,omitempty"`
}

// Report builds the ready-to-ship report for hosts, judging stalls with
// each host's profile timeout.
func Report(hosts []Host, profiles []Profile, now time.Time) []ReportRow {
	timeout := map[string]time.Duration{}
	for _, p := range profiles {
		timeout[p.Name] = p.InstallTimeout()
	}
	rows := make([]ReportRow, 0, len(hosts))
	for _, h := range hosts {
		to, ok := timeout[h.Profile]
		if !ok {
			to = DefaultInstallTimeout
		}
		r := ReportRow{
			MAC: h.MAC, Name: h.Name, Serial: h.Serial, SMBIOSSerial: h.Facts.Serial, Profile: h.Profile,
			State: h.State.String(), Stalled: Stalled(h, to, now), Attempt: h.Attempt,
			FirstBoot: h.FirstBootAt, LastIP: h.LastIP, FailedMessage: h.FailedMsg, DHCPAddress: h.DHCPAddress, OtherMACs: h.OtherMACs,
		}
		if h.State == StateInstalled {
			r.InstalledAt = h.InstalledAt
			if !h.BootAt.IsZero() {
				d := h.InstalledAt.Sub(h.BootAt)
				r.InstallDuration = d.Round(time.Second).String()
				r.InstallSeconds = d.Seconds()
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// reportHeader only ever grows at the end, so scripts reading columns by
// position keep working.
var reportHeader = []string{"mac", "name", "serial", "smbios_serial", "profile", "state", "stalled", "attempt",
	"first_boot", "installed_at", "install_duration_s", "last_ip", "failed_message", "dhcp_address", "other_macs"}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteReportCSV writes rows as CSV with a header.
func WriteReportCSV(w io.Writer, rows []ReportRow) error {
	cw := csv.NewWriter(w)
	cw.Write(reportHeader)
	for _, r := range rows {
		secs := ""
		if r.InstallDuration != "" {
			secs = strconv.FormatFloat(r.InstallSeconds, 'f', 0, 64)
		}
		cw.Write([]string{r.MAC, r.Name, r.Serial, r.SMBIOSSerial, r.Profile, r.State, strconv.FormatBool(r.Stalled),
			strconv.Itoa(r.Attempt), fmtTime(r.FirstBoot), fmtTime(r.InstalledAt), secs, r.LastIP, r.FailedMessage, r.DHCPAddress,
			strings.Join(r.OtherMACs, ";")})
	}
	cw.Flush()
	return cw.Error()
}

// WriteReportJSON writes rows as a JSON array.
func WriteReportJSON(w io.Writer, rows []ReportRow) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if rows == nil {
		rows = []ReportRow{}
	}
	return enc.Encode(rows)
}

// Duration is a time.Duration that reads and writes as "45m" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"45m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a positive Go duration like \"45m\"", s)
	}
	*d = Duration(v)
	return nil
}
