package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStalled(t *testing.T) {
	boot := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		state State
		boot  time.Time
		after time.Duration
		want  bool
	}{
		{StateBooting, boot, 10*time.Minute + time.Second, true},
		{StateInstalling, boot, 2 * time.Hour, true},
		{StateBooting, boot, 10 * time.Minute, false}, // at the limit, not over it
		{StateInstalling, boot, time.Minute, false},
		{StateInstalled, boot, 48 * time.Hour, false},
		{StateFailed, boot, 48 * time.Hour, false},
		{StateReady, boot, 48 * time.Hour, false},
		{StateBooting, time.Time{}, 48 * time.Hour, false}, // no boot time recorded
	}
	for _, tc := range tests {
		h := Host{State: tc.state, BootAt: tc.boot}
		if got := Stalled(h, 10*time.Minute, boot.Add(tc.after)); got != tc.want {
			t.Errorf("Stalled(%s, +%v) = %v, want %v", tc.state, tc.after, got, tc.want)
		}
	}
}

func TestInstallTimeout(t *testing.T) {
	if got := (Profile{}).InstallTimeout(); got != DefaultInstallTimeout {
		t.Errorf("default = %v", got)
	}
	if got := (Profile{Timeout: Duration(45 * time.Minute)}).InstallTimeout(); got != 45*time.Minute {
		t.Errorf("45m profile = %v", got)
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration(45 * time.Minute))
	if err != nil || string(b) != `"45m0s"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	for in, want := range map[string]time.Duration{`"45m"`: 45 * time.Minute, `"1h30m"`: 90 * time.Minute, `"0s"`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("Unmarshal(%s) = %v, %v", in, time.Duration(d), err)
		}
	}
	for _, bad := range []string{`45`, `"45"`, `"-5m"`, `"soon"`, `{}`} {
		d := Duration(time.Minute)
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) accepted: %v", bad, time.Duration(d))
		}
	}
	// A profile round-trips its timeout, and omits it when unset.
	p := Profile{Name: "p", Timeout: Duration(20 * time.Minute)}
	raw, _ := json.Marshal(p)
	if !strings.Contains(string(raw), `"installTimeout":"20m0s"`) {
		t.Fatalf("profile JSON %s", raw)
	}
	var back Profile
	if err := json.Unmarshal(raw, &back); err != nil || back.Timeout != p.Timeout {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	raw, _ = json.Marshal(Profile{Name: "p"})
	if strings.Contains(string(raw), "installTimeout") {
		t.Fatalf("unset timeout serialised: %s", raw)
	}
}

func TestReport(t *testing.T) {
	s := openTestStore(t)
	p := testProfile(t, "edge")
	p.Timeout = Duration(10 * time.Minute)
	if err := s.PutProfile(p); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Profile("edge")
	if stored.Timeout != p.Timeout {
		t.Fatalf("stored timeout %v", time.Duration(stored.Timeout))
	}
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:01", Name: "done", Serial: "S1", Profile: "edge", DHCPAddress: "10.0.0.21"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:02", Name: "stuck", Profile: "edge"})
	mustHost(t, s, Host{MAC: "aa:bb:cc:00:00:03"})
	if _, err := s.Seen("aa:bb:cc:00:00:01", "10.0.0.1", Facts{Serial: "S1-BIOS"}); err != nil {
		t.Fatal(err)
	}
	_, tok, _ := s.BeginInstall("aa:bb:cc:00:00:01", "")
	if _, _, err := s.Complete(tok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.BeginInstall("aa:bb:cc:00:00:02", ""); err != nil {
		t.Fatal(err)
	}
	hosts := mustHosts(t, s)
	profiles, _ := s.Profiles()
	stuck, _ := s.Host("aa:bb:cc:00:00:02")

	rows := Report(hosts, profiles, stuck.BootAt.Add(11*time.Minute))
	if len(rows) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	done, st, disc := rows[0], rows[1], rows[2]
	if done.State != "installed" || done.Stalled || done.SMBIOSSerial != "S1-BIOS" || done.Serial != "S1" || done.InstallDuration != "1s" || done.InstallSeconds != 1 || done.Attempt != 1 {
		t.Errorf("installed row = %+v", done)
	}
	if st.State != "booting" || !st.Stalled || st.InstallDuration != "" {
		t.Errorf("stuck row = %+v", st)
	}
	if disc.State != "discovered" || disc.Stalled {
		t.Errorf("discovered row = %+v", disc)
	}
	if rows := Report(hosts, profiles, stuck.BootAt.Add(9*time.Minute)); rows[1].Stalled {
		t.Error("stalled before the profile's timeout")
	}
	// A host whose profile is not in the list falls back to the default.
	if rows := Report(hosts, nil, stuck.BootAt.Add(11*time.Minute)); rows[1].Stalled {
		t.Error("the default timeout was not used without profiles")
	}

	evs, err := s.Events("aa:bb:cc:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	rows[0].SetLastBoot(Timeline(evs))
	var buf bytes.Buffer
	if err := WriteReportCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("report CSV does not parse: %v\n%s", err, buf.String())
	}
	// The boot phases come after every column the report had before them.
	if len(recs) != 4 || strings.Join(recs[0], ",") != "mac,name,serial,smbios_serial,profile,state,stalled,attempt,first_boot,installed_at,install_duration_s,last_ip,failed_message,dhcp_address,other_macs,"+
		"boot_firmware_dhcp_s,boot_boot_file_s,boot_ipxe_dhcp_s,boot_stage1_s,boot_stage2_s,boot_kernel_s,boot_initrd_s,boot_rootfs_s,boot_userdata_s,boot_done_s" {
		t.Fatalf("report CSV:\n%s", buf.String())
	}
	// Host 1's events: the install script, then the callback a second
	// later; no DHCP, no stage 1 (BeginInstall called directly).
	if got := strings.Join(recs[1][15:], ","); got != ",,,,0.000,,,,,1.000" {
		t.Errorf("installed row's phases = %q, want stage2 0.000 and done 1.000", got)
	}
	if got := strings.Join(recs[2][15:], ","); got != ",,,,,,,,," {
		t.Errorf("a row without its events read has phases %q", got)
	}
	if r := recs[1]; r[0] != "aa:bb:cc:00:00:01" || r[5] != "installed" || r[6] != "false" || r[10] != "1" || r[9] == "" || r[11] != "10.0.0.1" || r[13] != "10.0.0.21" {
		t.Errorf("installed CSV row = %q", r)
	}
	if r := recs[2]; r[6] != "true" || r[9] != "" || r[10] != "" || r[13] != "" {
		t.Errorf("stuck CSV row = %q", r)
	}

	buf.Reset()
	if err := WriteReportJSON(&buf, nil); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Fatalf("empty JSON report = %q, %v", buf.String(), err)
	}
	buf.Reset()
	if err := WriteReportJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	var back []ReportRow
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back) != 3 || back[1].MAC != "aa:bb:cc:00:00:02" || !back[1].Stalled || back[0].DHCPAddress != "10.0.0.21" || back[1].DHCPAddress != "" {
		t.Fatalf("JSON report: %+v, %v", back, err)
	}
}
