package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// parseCommand parses "VERB POSITIONAL... --flags... POSITIONAL..." so
// that the documented "host add MAC --profile P" order works with the
// standard flag package, which stops at the first non-flag.
func parseCommand(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos = append(pos, args[0])
		args = args[1:]
	}
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, commandHelp(fs)
		}
		return nil, err
	}
	return append(pos, fs.Args()...), nil
}

// helpText is the answer to "stagehand VERB... -h", returned as an error
// that matches flag.ErrHelp so the command stops there; main prints it
// to stdout and exits 0.
type helpText struct{ text string }

func (h *helpText) Error() string { return h.text }
func (h *helpText) Unwrap() error { return flag.ErrHelp }

// commandHelp is the command's lines of the usage text (its group's when
// it has none of its own, e.g. "profile show"), then its flags.
func commandHelp(fs *flag.FlagSet) error {
	var b strings.Builder
	if usageLines(&b, "stagehand "+fs.Name()) == 0 {
		group, _, _ := strings.Cut(fs.Name(), " ")
		usageLines(&b, "stagehand "+group)
	}
	b.WriteString("\nflags:\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return &helpText{b.String()}
}

// usageLines prints the lines of the usage text for commands starting
// with prefix ("stagehand host", "stagehand host list") and says how many:
// -h on a group or a command shows what it takes, with no API call and
// no token needed.
func usageLines(w io.Writer, prefix string) int {
	n := 0
	for _, l := range strings.Split(usage, "\n") {
		if t := strings.TrimSpace(l); t == prefix || strings.HasPrefix(t, prefix+" ") {
			fmt.Fprintln(w, l)
			n++
		}
	}
	return n
}

// isHelp reports whether a group's verb asks for help.
func isHelp(verb string) bool {
	return verb == "-h" || verb == "--help" || verb == "-help" || verb == "help"
}

func wantArgs(cmd string, pos []string, n int, what string) error {
	if len(pos) != n {
		return fmt.Errorf("%s: want %s, got %d argument(s)", cmd, what, len(pos))
	}
	return nil
}

func readFileFlag(flagName, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	return string(b), nil
}

func absPath(flagName, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	return a, nil
}

func runProfile(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("profile: want add, list, show or delete")
	}
	verb := args[0]
	if isHelp(verb) {
		usageLines(out, "stagehand profile")
		return nil
	}
	fs := flag.NewFlagSet("profile "+verb, flag.ContinueOnError)
	co := clientFlags(fs)
	var kernel, initrd, rootfs, cmdline, udFile, local, iso, timeout string
	if verb == "add" {
		fs.StringVar(&iso, "iso", "", "installer ISO on the server: kernel, initrd and rootfs are read from it ("+inventory.ISOKernel+", "+inventory.ISOInitrd+", "+inventory.ISORootFS+" unless given)")
		fs.StringVar(&kernel, "kernel", "", "kernel image (path on the server, or inside --iso)")
		fs.StringVar(&initrd, "initrd", "", "initrd (path on the server, or inside --iso)")
		fs.StringVar(&rootfs, "rootfs", "", "live root image (path on the server, or inside --iso), optional")
		fs.StringVar(&timeout, "install-timeout", "", "how long an install may take before the host shows as stalled (default 1h)")
		fs.StringVar(&cmdline, "cmdline", "", "kernel command line; ${config_url}, ${rootfs_url}, ${server} are filled in")
		fs.StringVar(&udFile, "userdata", "", "base user-data YAML file")
		fs.StringVar(&local, "local-boot", "exit", "how installed hosts boot their disk: exit or sanboot")
	}
	pos, err := parseCommand(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		if err := wantArgs("profile add", pos, 1, "NAME"); err != nil {
			return err
		}
		p := inventory.Profile{Name: pos[0], Cmdline: cmdline, Local: inventory.LocalBoot(local)}
		if timeout != "" {
			d, err := time.ParseDuration(timeout)
			if err != nil || d <= 0 {
				return fmt.Errorf("--install-timeout %q: want a duration like 45m", timeout)
			}
			p.Timeout = inventory.Duration(d)
		}
		if iso != "" {
			// Paths inside the image stay as given.
			p.Kernel, p.Initrd, p.RootFS = kernel, initrd, rootfs
			if p.ISO, err = absPath("iso", iso); err != nil {
				return err
			}
		} else {
			if p.Kernel, err = absPath("kernel", kernel); err != nil {
				return err
			}
			if p.Initrd, err = absPath("initrd", initrd); err != nil {
				return err
			}
			if p.RootFS, err = absPath("rootfs", rootfs); err != nil {
				return err
			}
		}
		if p.UserData, err = readFileFlag("userdata", udFile); err != nil {
			return err
		}
		var got inventory.Profile
		if err := c.do(ctx, http.MethodPut, "/profiles/"+url.PathEscape(p.Name), p, &got); err != nil {
			return err
		}
		return printProfiles(c, out, []inventory.Profile{got})
	case "list":
		var ps []inventory.Profile
		if err := c.do(ctx, http.MethodGet, "/profiles", nil, &ps); err != nil {
			return err
		}
		return printProfiles(c, out, ps)
	case "show":
		if err := wantArgs("profile show", pos, 1, "NAME"); err != nil {
			return err
		}
		var p inventory.Profile
		if err := c.do(ctx, http.MethodGet, "/profiles/"+url.PathEscape(pos[0]), nil, &p); err != nil {
			return err
		}
		return printProfiles(c, out, []inventory.Profile{p})
	case "delete":
		if err := wantArgs("profile delete", pos, 1, "NAME"); err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/profiles/"+url.PathEscape(pos[0]), nil, nil)
	}
	return fmt.Errorf("profile %s: unknown; want add, list, show or delete", verb)
}

func printProfiles(c *client, out io.Writer, ps []inventory.Profile) error {
	if c.output == "json" {
		if len(ps) == 1 {
			return c.printJSON(out, ps[0])
		}
		return c.printJSON(out, ps)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKERNEL\tINITRD\tROOTFS\tLOCAL BOOT\tTIMEOUT\tCMDLINE")
	for _, p := range ps {
		k, i, r := p.Kernel, p.Initrd, dash(p.RootFS)
		if p.ISO != "" {
			k, i, r = p.ISO+":"+k, p.ISO+":"+i, p.ISO+":"+r
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, k, i, r, p.Local, p.InstallTimeout(), p.Cmdline)
	}
	return tw.Flush()
}

func runHost(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("host: want add, update, list, show, events, userdata, reprovision, assign, import, export, cidata or delete")
	}
	verb := args[0]
	if isHelp(verb) {
		usageLines(out, "stagehand host")
		return nil
	}
	switch verb {
	case "import", "export", "assign", "update", "cidata":
		return runHostRack(ctx, verb, args[1:], out)
	}
	fs := flag.NewFlagSet("host "+verb, flag.ContinueOnError)
	co := clientFlags(fs)
	var profile, serial, name, siteFile, udFile, dhcpAddr string
	var otherMACs optString
	var secrets bool
	var ff *filterFlags
	switch verb {
	case "add":
		fs.StringVar(&profile, "profile", "", "profile to install")
		fs.StringVar(&serial, "serial", "", "serial number from the manifest")
		fs.StringVar(&name, "name", "", "host name (unique; becomes stylus.site.name)")
		fs.StringVar(&dhcpAddr, "dhcp-address", "", "IPv4 address reserved for the host in full DHCP mode (unique)")
		fs.Var(&otherMACs, "other-macs", "the machine's other NICs, MAC,MAC: it may PXE-boot from any of them (each unique)")
		fs.StringVar(&siteFile, "site", "", "YAML file with the host's stylus.site fields")
		fs.StringVar(&udFile, "userdata", "", "YAML file with per-host user-data overrides")
	case "list", "reprovision":
		ff = addFilterFlags(fs, verb == "reprovision")
	case "userdata":
		fs.BoolVar(&secrets, "secrets", false, "show secrets instead of masking them")
	}
	pos, err := parseCommand(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	one := func() (string, error) {
		if err := wantArgs("host "+verb, pos, 1, "MAC"); err != nil {
			return "", err
		}
		return "/hosts/" + url.PathEscape(pos[0]), nil
	}
	switch verb {
	case "add":
		if err := wantArgs("host add", pos, 1, "MAC"); err != nil {
			return err
		}
		spec := api.HostSpec{MAC: pos[0], Profile: &profile, Serial: &serial, Name: &name, DHCPAddress: &dhcpAddr, OtherMACs: otherMACs.macList()}
		if err := (*hostSpec)(&spec).readFiles(siteFile, udFile); err != nil {
			return err
		}
		var h api.HostView
		if err := c.do(ctx, http.MethodPost, "/hosts", spec, &h); err != nil {
			return err
		}
		return printHosts(c, out, []api.HostView{h}, true)
	case "list":
		var hs []api.HostView
		if err := c.do(ctx, http.MethodGet, "/hosts"+ff.query(), nil, &hs); err != nil {
			return err
		}
		return printHosts(c, out, hs, false)
	case "reprovision":
		if len(pos) == 0 {
			if ff.query() == "" {
				// The server would answer with its query syntax (all=true);
				// tell a shell user the flag.
				return errors.New("host reprovision: give a MAC, a filter (--state, --profile, --tag) or --all")
			}
			return bulkAction(ctx, c, out, "/hosts/reprovision"+ff.query(), nil, "reprovisioned")
		}
		fallthrough
	case "show":
		path, err := one()
		if err != nil {
			return err
		}
		var h api.HostView
		if verb == "show" {
			err = c.do(ctx, http.MethodGet, path, nil, &h)
		} else {
			err = c.do(ctx, http.MethodPost, path+"/reprovision", nil, &h)
		}
		if err != nil {
			return err
		}
		return printHosts(c, out, []api.HostView{h}, true)
	case "events":
		path, err := one()
		if err != nil {
			return err
		}
		var ev []inventory.Event
		if err := c.do(ctx, http.MethodGet, path+"/events", nil, &ev); err != nil {
			return err
		}
		if c.output == "json" {
			return c.printJSON(out, ev)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tATTEMPT\tKIND\tDETAIL")
		for _, e := range ev {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Attempt, e.Kind, e.Detail)
		}
		return tw.Flush()
	case "userdata":
		path, err := one()
		if err != nil {
			return err
		}
		path += "/userdata"
		if secrets {
			path += "?secrets=true"
		}
		raw, err := c.raw(ctx, http.MethodGet, path, nil)
		if err != nil {
			return err
		}
		_, err = out.Write(raw)
		return err
	case "delete":
		path, err := one()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, path, nil, nil)
	}
	return fmt.Errorf("host %s: unknown; want add, list, show, events, userdata, reprovision or delete", verb)
}

func printHosts(c *client, out io.Writer, hs []api.HostView, single bool) error {
	if c.output == "json" {
		if single && len(hs) == 1 {
			return c.printJSON(out, hs[0])
		}
		if hs == nil {
			hs = []api.HostView{}
		}
		return c.printJSON(out, hs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tNAME\tPROFILE\tSTATE\tATTEMPT\tLAST IP\tSERIAL\tINSTALLED AT")
	for _, h := range hs {
		inst := "-"
		if !h.InstalledAt.IsZero() {
			inst = h.InstalledAt.Local().Format(time.DateTime)
		}
		serial := h.Serial
		if serial == "" {
			serial = h.Facts.Serial
		}
		state := h.State.String()
		if h.Stalled {
			state += " (stalled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", h.MAC, dash(h.Name), dash(h.Profile), state, h.Attempt, dash(h.LastIP), dash(serial), inst)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	co := clientFlags(fs)
	if _, err := parseCommand(fs, args); err != nil {
		return err
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	var st api.Status
	if err := c.do(ctx, http.MethodGet, "/status", nil, &st); err != nil {
		return err
	}
	if c.output == "json" {
		return c.printJSON(out, st)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tHOSTS")
	for _, s := range []string{"discovered", "ready", "booting", "installing", "installed", "failed"} {
		fmt.Fprintf(tw, "%s\t%d\n", s, st.ByState[s])
	}
	fmt.Fprintf(tw, "total\t%d\n", st.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Failed) > 0 {
		fmt.Fprintf(out, "failed: %s\n", strings.Join(st.Failed, ", "))
	}
	if len(st.Stalled) > 0 {
		fmt.Fprintf(out, "stalled: %s\n", strings.Join(st.Stalled, ", "))
	}
	return nil
}
