package inventory

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stagehand-dev/stagehand/internal/safetext"
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
	at := StallsAt(h, timeout)
	return !at.IsZero() && now.After(at)
}

// StallsAt is when h's live attempt counts as stalled if the installer
// stays silent; zero when h has no live attempt. A stall is time passing,
// not an event, so a follower of the event stream wakes at this instant
// instead of polling.
func StallsAt(h Host, timeout time.Duration) time.Time {
	if !h.State.Live() || h.BootAt.IsZero() {
		return time.Time{}
	}
	return h.BootAt.Add(timeout)
}

// ReportRow is one host in the ready-to-ship report.
type ReportRow struct {
	MAC          string `json:"mac"`
	Name         string `json:"name,omitempty"`
	Serial       string `json:"serial,omitempty"`       // from the manifest
	SMBIOSSerial string `json:"smbiosSerial,omitempty"` // as the host reported it
	Profile      string `json:"profile,omitempty"`
	State        string `json:"state"`
	Stalled      bool   `json:"stalled"`
	// StallsAt is when a live attempt counts as stalled (StallsAt).
	StallsAt        time.Time `json:"stallsAt,omitzero"`
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
	// LastBoot is the host's latest boot attempt (Timeline), when the
	// caller read its events (SetLastBoot); CSV columns boot_PHASE_s.
	LastBoot *Attempt `json:"lastBoot,omitempty"`

	host Host // the operator's fields, for the export's manifest columns
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
			State: h.State.String(), Stalled: Stalled(h, to, now), StallsAt: StallsAt(h, to), Attempt: h.Attempt,
			FirstBoot: h.FirstBootAt, LastIP: h.LastIP, FailedMessage: h.FailedMsg, DHCPAddress: h.DHCPAddress, OtherMACs: h.OtherMACs, host: h,
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

// reportColumn is one column of the CSV report: a host field of the
// table (field) or a read-only fact of the host's provisioning (value).
type reportColumn struct {
	name  string
	field string
	value func(ReportRow) string
}

// reportColumns only ever grow at the end, so scripts reading columns by
// position keep working; the phase columns (phaseColumns) follow them,
// and in the export they follow the manifest's columns too. Host fields appear under Field.Report; a test
// checks that every field with a Report column is here.
var reportColumns = []reportColumn{
	{name: "mac", field: "mac"},
	{name: "name", field: "name"},
	{name: "serial", field: "serial"},
	{name: "smbios_serial", value: func(r ReportRow) string { return r.SMBIOSSerial }},
	{name: "profile", field: "profile"},
	{name: "state", value: func(r ReportRow) string { return r.State }},
	{name: "stalled", value: func(r ReportRow) string { return strconv.FormatBool(r.Stalled) }},
	{name: "attempt", value: func(r ReportRow) string { return strconv.Itoa(r.Attempt) }},
	{name: "first_boot", value: func(r ReportRow) string { return fmtTime(r.FirstBoot) }},
	{name: "installed_at", value: func(r ReportRow) string { return fmtTime(r.InstalledAt) }},
	{name: "install_duration_s", value: func(r ReportRow) string {
		if r.InstallDuration == "" {
			return ""
		}
		return strconv.FormatFloat(r.InstallSeconds, 'f', 0, 64)
	}},
	{name: "last_ip", value: func(r ReportRow) string { return r.LastIP }},
	{name: "failed_message", value: func(r ReportRow) string { return r.FailedMessage }},
	{name: "dhcp_address", field: "dhcpAddress"},
	{name: "other_macs", field: "otherMACs"},
}

// SetLastBoot puts the latest of the host's boot attempts (Timeline of
// its events) on r.
func (r *ReportRow) SetLastBoot(attempts []Attempt) {
	if len(attempts) > 0 {
		r.LastBoot = &attempts[len(attempts)-1]
	}
}

// phaseColumns are the latest attempt's phases, in seconds to the
// millisecond, one column per phase (Phases): appended after every
// other column of the report and of the export.
func phaseColumns() []reportColumn {
	var out []reportColumn
	for _, p := range Phases() {
		out = append(out, reportColumn{name: PhaseColumn(p), value: func(r ReportRow) string {
			if r.LastBoot == nil {
				return ""
			}
			t, ok := r.LastBoot.Phase(p)
			if !ok {
				return ""
			}
			return strconv.FormatFloat(t.Seconds, 'f', 3, 64)
		}})
	}
	return out
}

// PhaseColumn is the report's column for phase p: "boot_stage1_s".
func PhaseColumn(p Phase) string {
	return "boot_" + strings.ReplaceAll(string(p), "-", "_") + "_s"
}

// reportOnlyColumns are the report's columns that are no host field: an
// import accepts and ignores them.
func reportOnlyColumns() []string {
	var out []string
	for _, c := range append(slices.Clone(reportColumns), phaseColumns()...) {
		if c.field == "" {
			out = append(out, c.name)
		}
	}
	return out
}

// exportColumns are the report's columns, then every host field the
// report does not carry, under its manifest name; secret fields only
// when asked for.
func exportColumns(secrets bool) []reportColumn {
	cols := slices.Clone(reportColumns)
	inReport := map[string]bool{}
	for _, c := range reportColumns {
		inReport[c.field] = true
	}
	for _, f := range Fields {
		if !inReport[f.Name] && (secrets || !f.Secret) {
			cols = append(cols, reportColumn{name: f.Name, field: f.Name})
		}
	}
	return append(cols, phaseColumns()...)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteReportCSV writes the report's columns of rows as CSV with a
// header.
func WriteReportCSV(w io.Writer, rows []ReportRow) error {
	return writeCSV(w, rows, append(slices.Clone(reportColumns), phaseColumns()...))
}

// WriteExportCSV writes the export: the report's columns, then the
// manifest's columns the report lacks. It is a manifest: ParseCSV reads
// its host fields back and ignores the report-only columns. Secret
// fields (edgeHostToken) are written only when secrets is set; a file
// without them imports without touching the stored secrets.
func WriteExportCSV(w io.Writer, rows []ReportRow, secrets bool) error {
	return writeCSV(w, rows, exportColumns(secrets))
}

// writeCSV is the one CSV writer of reports and exports. Every cell
// goes through safetext.Cell, so no spreadsheet reads one as a formula,
// and ParseCSV undoes it (safetext.Uncell), so the export stays a
// manifest. The report's own columns (the host's reported serial, an
// installer's message) are also one escaped line each (safetext.Line):
// what the store holds is clean already, and a row must read whole in a
// spreadsheet or a line-based tool whatever an older store kept.
func writeCSV(w io.Writer, rows []ReportRow, cols []reportColumn) error {
	cw := csv.NewWriter(w)
	line := make([]string, len(cols))
	for i, c := range cols {
		line[i] = c.name
	}
	cw.Write(line)
	for _, r := range rows {
		for i, c := range cols {
			if c.field != "" {
				f, _ := FieldByName(c.field)
				h := r.host
				if h.MAC == "" {
					h.MAC = r.MAC // a row built by hand
				}
				line[i] = safetext.Cell(f.Get(&h))
			} else {
				line[i] = safetext.Cell(safetext.Line(c.value(r)))
			}
		}
		cw.Write(line)
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
