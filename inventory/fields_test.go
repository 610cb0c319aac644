package inventory

import (
	"bytes"
	"encoding/csv"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/userdata"
)

// fullHost sets every field of the table, with the awkward values a
// manifest must carry: user-data with newlines and commas, tags, static
// network, other NICs, a DHCP reservation and a secret.
func fullHost(mac, name, profile, ip, dhcp, other string) Host {
	return Host{
		MAC: mac, Name: name, Serial: "SN, " + name, Profile: profile,
		Site: userdata.Site{
			PaletteEndpoint: "api.palette.example", RegistrationURL: "https://reg.example/" + name,
			ProjectUID: "proj-1", EdgeHostToken: "secret-" + name,
			Tags:    map[string]string{"rack": "r1", "row": "7"},
			Network: &userdata.Network{Type: "static", IPAddress: ip, Mask: "24", Gateway: "10.1.0.1", Nameserver: "10.1.0.2", HTTPProxy: "http://proxy.example:3128"},
		},
		UserData:    "#cloud-config\nstages:\n  boot:\n    - name: \"a, b\"\n",
		DHCPAddress: dhcp,
		OtherMACs:   []string{other},
	}
}

// TestFieldsEverySurface walks the field table and checks that each
// field is a manifest column, an export column (secrets only when asked
// for), and in the report under its Report name.
func TestFieldsEverySurface(t *testing.T) {
	cols := csvColumns()
	report := map[string]string{}
	for _, c := range reportColumns {
		report[c.name] = c.field
	}
	names := func(cs []reportColumn) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.name)
		}
		return out
	}
	plain, secret := names(exportColumns(false)), names(exportColumns(true))
	h := fullHost("aa:bb:cc:00:00:01", "n1", "p", "10.1.0.11", "10.0.0.21", "aa:bb:cc:00:01:01")
	seenFlag := map[string]bool{}
	for _, f := range Fields {
		if !slices.Contains(cols, f.Name) {
			t.Errorf("field %s: no manifest column", f.Name)
		}
		if f.Get(&h) == "" {
			t.Errorf("field %s: fullHost does not set it (or Get does not read it)", f.Name)
		}
		if f.Name != "mac" && (f.Flag == "" || seenFlag[f.Flag]) {
			t.Errorf("field %s: flag %q missing or taken twice", f.Name, f.Flag)
		}
		seenFlag[f.Flag] = true
		if f.JSON == "" {
			t.Errorf("field %s: no JSON path", f.Name)
		}
		if f.Report != "" && report[f.Report] != f.Name {
			t.Errorf("field %s: report column %s not in the report", f.Name, f.Report)
		}
		name := f.Name
		if f.Report != "" {
			name = f.Report
		}
		if !slices.Contains(secret, name) {
			t.Errorf("field %s: not in the export with secrets", f.Name)
		}
		if slices.Contains(plain, name) == f.Secret {
			t.Errorf("field %s (secret %v): in the export without secrets: %v", f.Name, f.Secret, slices.Contains(plain, name))
		}
		// The text form reads back.
		var back Host
		if err := f.Set(&back, f.Get(&h)); err != nil || f.Get(&back) != f.Get(&h) {
			t.Errorf("field %s: Set(Get) = %q, %v; want %q", f.Name, f.Get(&back), err, f.Get(&h))
		}
	}
	if got := names(reportColumns)[:15]; strings.Join(got, ",") != "mac,name,serial,smbios_serial,profile,state,stalled,attempt,first_boot,installed_at,install_duration_s,last_ip,failed_message,dhcp_address,other_macs" {
		t.Errorf("report columns changed order: %v", got)
	}
}

// TestExportRoundTrip: the CSV export of an inventory imports into an
// empty one and reproduces every field of the table; without secrets
// the file carries none and its import leaves stored secrets alone.
func TestExportRoundTrip(t *testing.T) {
	src := openTestStore(t)
	mustProfile(t, src, "edge")
	want := []Host{
		fullHost("aa:bb:cc:00:00:01", "n1", "edge", "10.1.0.11", "10.0.0.21", "aa:bb:cc:00:01:01"),
		fullHost("aa:bb:cc:00:00:02", "n2", "edge", "10.1.0.12", "10.0.0.22", "aa:bb:cc:00:01:02"),
		{MAC: "aa:bb:cc:00:00:03"}, // discovered: every field empty
		// Values a spreadsheet would run, which the export writes behind a
		// quote and the import reads back without it.
		{MAC: "aa:bb:cc:00:00:04", Profile: "edge", Serial: `=HYPERLINK("http://x.example/","y")`,
			Site: userdata.Site{Tags: map[string]string{"-rack": "@r1"}}},
		{MAC: "aa:bb:cc:00:00:05", Profile: "edge", Serial: "'=quoted by its maker"},
	}
	for _, h := range want {
		if _, err := src.CreateHost(h); err != nil {
			t.Fatalf("CreateHost %s: %v", h.MAC, err)
		}
	}
	export := func(s *Store, secrets bool) string {
		hosts := mustHosts(t, s)
		ps, _ := s.Profiles()
		var buf bytes.Buffer
		if err := WriteExportCSV(&buf, Report(hosts, ps, time.Now()), secrets); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	withSecrets := export(src, true)

	dst := openTestStore(t)
	mustProfile(t, dst, "edge")
	if _, err := dst.ImportParsed(ParseCSV(strings.NewReader(withSecrets))); err != nil {
		t.Fatalf("import of the export: %v\n%s", err, withSecrets)
	}
	for _, w := range want {
		got, err := dst.Host(w.MAC)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range Fields {
			if f.Get(&got) != f.Get(&w) {
				t.Errorf("host %s field %s: %q after the round trip, want %q", w.MAC, f.Name, f.Get(&got), f.Get(&w))
			}
		}
	}
	if again := export(dst, true); stripReadOnly(t, again) != stripReadOnly(t, withSecrets) {
		t.Errorf("export of the copy differs:\n%s\nwant\n%s", again, withSecrets)
	}

	plain := export(src, false)
	if strings.Contains(plain, "secret-n1") || strings.Contains(strings.ToLower(plain), "edgehosttoken") {
		t.Fatalf("export without secrets carries one:\n%s", plain)
	}
	// Importing it over the copy changes no secret.
	if _, err := dst.ImportParsed(ParseCSV(strings.NewReader(plain))); err != nil {
		t.Fatal(err)
	}
	if h, _ := dst.Host("aa:bb:cc:00:00:01"); h.Site.EdgeHostToken != "secret-n1" {
		t.Errorf("import without the secret column changed the token to %q", h.Site.EdgeHostToken)
	}
}

// stripReadOnly keeps an export's manifest columns, for comparing two
// inventories whose provisioning history differs.
func stripReadOnly(t *testing.T, s string) string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	ro := reportOnlyColumns()
	var b strings.Builder
	for _, r := range recs {
		for i, c := range recs[0] {
			if !slices.Contains(ro, c) {
				b.WriteString(r[i] + "|")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestExportFailedMessageOneLine(t *testing.T) {
	rows := []ReportRow{{MAC: "aa:bb:cc:00:00:01", State: "failed", FailedMessage: "line 1\nline 2"}}
	var buf bytes.Buffer
	if err := WriteExportCSV(&buf, rows, false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 || !strings.Contains(buf.String(), `line 1\nline 2`) {
		t.Fatalf("export of a two-line message (%d lines):\n%s", n, buf.String())
	}
	if !reflect.DeepEqual(rows[0].FailedMessage, "line 1\nline 2") {
		t.Fatal("row changed")
	}
}

// The README's manifest section names every field of the table.
func TestFieldsInREADME(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "Manifest columns")
	end := strings.Index(doc, "The export (the ready-to-ship report)")
	if start < 0 || end < start {
		t.Fatal("README has no manifest section")
	}
	section := doc[start:end]
	for _, f := range Fields {
		if !strings.Contains(section, f.Name) {
			t.Errorf("README's manifest section does not name field %s", f.Name)
		}
	}
}
