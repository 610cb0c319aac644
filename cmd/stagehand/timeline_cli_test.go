package main

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
)

// bootEvents records an iPXE NIC ROM install of mac in the store as the
// server would: its DHCP replies 40 ms apart and stage 1 50 ms later
// (the times the recorder keeps), then stage 2, the artifacts, the
// user-data and the callback as the store records them.
func bootEvents(t *testing.T, st *inventory.Store, mac string) {
	t.Helper()
	at := time.Now().Add(-time.Second)
	if _, err := st.AddEvents([]inventory.HostEvent{
		{MAC: mac, Kind: "dhcp", Detail: "full OFFER 10.0.0.9 client ipxe arch bios boot http://s/boot.ipxe", Time: at},
		{MAC: mac, Kind: "dhcp", Detail: "full ACK 10.0.0.9 client ipxe arch bios boot http://s/boot.ipxe", Time: at.Add(40 * time.Millisecond)},
		{MAC: mac, Kind: "script", Detail: inventory.Stage1Detail + " to 10.0.0.9", Time: at.Add(90 * time.Millisecond)},
	}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := st.BeginInstall(mac, "10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddEvents([]inventory.HostEvent{{MAC: mac, Kind: "artifact", Detail: "edge/kernel"}, {MAC: mac, Kind: "artifact", Detail: "edge/initrd"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.FetchUserData(tok, "10.0.0.9", inventory.AnyIP, func(inventory.Host, inventory.Profile) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Complete(tok); err != nil {
		t.Fatal(err)
	}
}

// host show prints the latest attempt's phases (start offset, seconds)
// after the record; -o json carries the whole timeline.
func TestCLIHostShowTimeline(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mac := "52:54:00:dd:00:01"
	mustCLI(t, rs.with("host", "add", mac, "--profile", "edge")...)
	if out := mustCLI(t, rs.with("host", "show", mac)...); strings.Contains(out, "PHASE") {
		t.Fatalf("a host that never booted shows phases:\n%s", out)
	}
	bootEvents(t, rs.st, mac)

	out := mustCLI(t, rs.with("host", "show", mac)...)
	if !strings.Contains(out, "\nboot attempt 1 (installed), ") {
		t.Errorf("no heading for attempt 1:\n%s", out)
	}
	_, table, _ := strings.Cut(out, "PHASE")
	var phases []string
	for _, l := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		phases = append(phases, strings.Fields(l)[0])
	}
	if want := []string{"ipxe-dhcp", "stage1", "stage2", "kernel", "initrd", "userdata", "done"}; !slices.Equal(phases, want) {
		t.Fatalf("phases %v, want %v:\n%s", phases, want, out)
	}
	if r := row(t, out, "ipxe-dhcp"); !slices.Equal(r, []string{"ipxe-dhcp", "+0.000s", "0.040"}) {
		t.Errorf("ipxe-dhcp row %v", r)
	}
	if r := row(t, out, "stage1"); !slices.Equal(r, []string{"stage1", "+0.040s", "0.050"}) {
		t.Errorf("stage1 row %v", r)
	}

	var h struct {
		Timeline []inventory.Attempt `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, rs.with("host", "show", mac, "-o", "json")...)), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Timeline) != 1 || h.Timeline[0].Outcome != "installed" || len(h.Timeline[0].Phases) != 7 || h.Timeline[0].Phases[1].Seconds != 0.05 {
		t.Errorf("JSON timeline %+v", h.Timeline)
	}
}

// host export (the report) keeps its columns where they were and ends
// with one column per phase: the latest attempt's seconds, to the ms.
func TestCLIExportPhaseColumns(t *testing.T) {
	rs := newRackServer(t)
	rs.profile("edge")
	mac := "52:54:00:dd:00:02"
	mustCLI(t, rs.with("host", "add", mac, "--profile", "edge", "--name", "n2")...)
	bootEvents(t, rs.st, mac)

	recs, err := csv.NewReader(strings.NewReader(mustCLI(t, rs.with("host", "export")...))).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("export: %v %v", recs, err)
	}
	head, vals := recs[0], recs[1]
	const before = "mac,name,serial,smbios_serial,profile,state,stalled,attempt,first_boot,installed_at,install_duration_s,last_ip,failed_message,dhcp_address,other_macs"
	if !strings.HasPrefix(strings.Join(head, ","), before+",") {
		t.Errorf("the report's columns moved: %v", head)
	}
	n := len(head) - len(inventory.Phases())
	got := map[string]string{}
	for i, c := range head[n:] {
		if want := inventory.PhaseColumn(inventory.Phases()[i]); c != want {
			t.Errorf("column %d %q, want %q", n+i, c, want)
		}
		got[c] = vals[n+i]
	}
	if got["boot_ipxe_dhcp_s"] != "0.040" || got["boot_stage1_s"] != "0.050" || got["boot_firmware_dhcp_s"] != "" || got["boot_rootfs_s"] != "" || got["boot_done_s"] == "" {
		t.Errorf("phase columns %v", got)
	}
}
