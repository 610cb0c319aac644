package ipxe

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"text/template"
)

// Stage1 is served at /boot.ipxe to every iPXE client. It collects the
// facts iPXE knows (SMBIOS serial and product, platform) and chains to
// stage 2 with them. Retries matter: on a rack power-on the HTTP server
// sees a burst, and a single failed chain would drop a host to the
// firmware's next boot device.
//
// ${mac:hexhyp}: hyphens survive any URL parser; :uristring escapes
// serials with spaces or slashes, which real SMBIOS tables contain.
var stage1 = template.Must(template.New("stage1").Parse(`#!ipxe
# stagehand stage 1: identify this host, then ask what to do.
set stagehand-try:int32 0
:stagehand-chain
chain --autofree {{.Base}}/ipxe?mac=${mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}&manufacturer=${manufacturer:uristring}&product=${product:uristring}&buildarch=${buildarch}&platform=${platform} && goto stagehand-end ||
inc stagehand-try
iseq ${stagehand-try} {{.Retries}} && goto stagehand-giveup ||
echo stagehand: stage 2 not reachable (try ${stagehand-try}/{{.Retries}}), retrying in {{.Delay}}s
sleep {{.Delay}}
goto stagehand-chain
:stagehand-giveup
echo stagehand: giving up on {{.Base}}; leaving iPXE
exit 1
:stagehand-end
`))

// Stage1Params are the values stage 1 needs.
type Stage1Params struct {
	Base    string // http://server:port, no trailing slash
	Retries int    // default 5
	Delay   int    // seconds between retries, default 3
}

// RenderStage1 returns the stage-1 script.
func RenderStage1(p Stage1Params) []byte {
	if p.Retries <= 0 {
		p.Retries = 5
	}
	if p.Delay <= 0 {
		p.Delay = 3
	}
	var b bytes.Buffer
	stage1.Execute(&b, p) // the template and params are ours: no error path
	return b.Bytes()
}

// InstallParams describe one install attempt.
type InstallParams struct {
	Host      string // for the console line: MAC and name
	Attempt   int
	KernelURL string
	InitrdURL string
	// Cmdline is the profile's command line after placeholder expansion
	// (see ExpandCmdline); the initrd= argument is added here.
	Cmdline string
}

// The initrd's name inside iPXE. UEFI kernels find their initrd through
// "initrd=NAME" on the command line (the EFI stub loads it by name); BIOS
// ignores the argument. Without it UEFI panics with no root filesystem.
const initrdName = "initrd.img"

var install = template.Must(template.New("install").Parse(`#!ipxe
# stagehand stage 2: install
echo stagehand: installing {{.Host}} (attempt {{.Attempt}})
set stagehand-try:int32 0
:stagehand-fetch
imgfree
kernel {{.KernelURL}} initrd={{.InitrdName}} {{.Cmdline}} || goto stagehand-retry
initrd --name {{.InitrdName}} {{.InitrdURL}} || goto stagehand-retry
boot || goto stagehand-retry
:stagehand-retry
inc stagehand-try
iseq ${stagehand-try} 5 && goto stagehand-giveup ||
echo stagehand: download failed (try ${stagehand-try}/5), retrying in 3s
sleep 3
goto stagehand-fetch
:stagehand-giveup
echo stagehand: could not load the installer; leaving iPXE
exit 1
`))

// RenderInstall returns the install script.
func RenderInstall(p InstallParams) []byte {
	var b bytes.Buffer
	install.Execute(&b, struct {
		InstallParams
		InitrdName string
	}{InstallParams{scriptSafe(p.Host), p.Attempt, p.KernelURL, p.InitrdURL, p.Cmdline}, initrdName})
	return b.Bytes()
}

// LocalMethod is how iPXE hands over to the local disk.
type LocalMethod string

// RenderLocal returns the script that boots the local disk. "exit" hands
// control back to the firmware, which moves on to the next boot device
// (the disk the installer just wrote); "sanboot" boots BIOS drive 0x80
// directly, for firmware that would otherwise retry the network forever.
//
// It names neither the host nor its state: whoever asks for a MAC hears
// the same script, so a stranger learns nothing of the inventory from
// it. Why the host boots its disk is in its events.
func RenderLocal(method LocalMethod) []byte {
	var b strings.Builder
	b.WriteString("#!ipxe\n# stagehand stage 2: local boot\necho stagehand: booting local disk\n")
	if method == "sanboot" {
		b.WriteString("sanboot --no-describe --drive 0x80 || exit 1\n")
	} else {
		b.WriteString("exit 1\n")
	}
	return []byte(b.String())
}

// RenderWait returns the script for a host that must wait for an
// operator (discovered, no profile yet): it says so on the console and
// asks again after delay seconds, so assigning a profile is all it takes.
func RenderWait(host, reason, stage1URL string, delay int) []byte {
	var b strings.Builder
	b.WriteString("#!ipxe\n# stagehand stage 2: wait\n")
	fmt.Fprintf(&b, "echo stagehand: %s: %s\n", scriptSafe(host), scriptSafe(reason))
	fmt.Fprintf(&b, "echo stagehand: asking again in %ds\nsleep %d\nchain --autofree %s || exit 1\n", delay, delay, stage1URL)
	return []byte(b.String())
}

// RenderMessage returns a script that prints a message and leaves iPXE.
func RenderMessage(msg string) []byte {
	return []byte("#!ipxe\necho stagehand: " + scriptSafe(msg) + "\nexit 1\n")
}

// scriptSafe keeps operator- and client-supplied text from breaking out
// of an echo line: iPXE expands ${...} and treats newlines as commands.
func scriptSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '$' || r == '\n' || r == '\r' || r == '#' || r == '|' || r == '&':
			return '_'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// CmdlineVars are the placeholders a profile's command line may use.
type CmdlineVars struct {
	ConfigURL string // this attempt's user-data URL
	RootFSURL string // the live root image, when the profile has one
	Server    string // http://server:port
}

// ExpandCmdline fills ${config_url}, ${rootfs_url} and ${server} in a
// profile's command line, and appends config_url= when the profile did
// not place it: the installer cannot find its user-data without it.
func ExpandCmdline(tmpl string, v CmdlineVars) string {
	r := strings.NewReplacer("${config_url}", v.ConfigURL, "${rootfs_url}", v.RootFSURL, "${server}", v.Server)
	out := strings.TrimSpace(r.Replace(tmpl))
	if !strings.Contains(out, "config_url=") {
		if out != "" {
			out += " "
		}
		out += "config_url=" + v.ConfigURL
	}
	return out
}

// Query is what stage 1 sends to stage 2.
type Query struct {
	MAC                                 string
	UUID, Serial, Manufacturer, Product string
	BuildArch, Platform                 string
}

// maxQueryField bounds each stage-2 parameter: SMBIOS strings are short,
// and anything longer is not from iPXE.
const maxQueryField = 128

// ParseQuery validates stage 2's query string. The MAC is required; the
// other fields are optional facts, bounded and stripped of control bytes.
func ParseQuery(q url.Values) (Query, error) {
	var out Query
	for _, f := range []struct {
		name string
		dst  *string
	}{{"mac", &out.MAC}, {"uuid", &out.UUID}, {"serial", &out.Serial}, {"manufacturer", &out.Manufacturer},
		{"product", &out.Product}, {"buildarch", &out.BuildArch}, {"platform", &out.Platform}} {
		vals := q[f.name]
		if len(vals) > 1 {
			return Query{}, fmt.Errorf("parameter %s: given %d times", f.name, len(vals))
		}
		if len(vals) == 0 {
			continue
		}
		v := strings.TrimSpace(vals[0])
		if len(v) > maxQueryField {
			return Query{}, fmt.Errorf("parameter %s: longer than %d bytes", f.name, maxQueryField)
		}
		if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return Query{}, fmt.Errorf("parameter %s: contains control characters", f.name)
		}
		*f.dst = v
	}
	if out.MAC == "" {
		return Query{}, fmt.Errorf("parameter mac: required")
	}
	return out, nil
}
