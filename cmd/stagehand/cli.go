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

	"gopkg.in/yaml.v3"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
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
		return nil, err
	}
	return append(pos, fs.Args()...), nil
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
	fs := flag.NewFlagSet("profile "+verb, flag.ContinueOnError)
	co := clientFlags(fs)
	var kernel, initrd, rootfs, cmdline, udFile, local string
	if verb == "add" {
		fs.StringVar(&kernel, "kernel", "", "kernel image (path on the server)")
		fs.StringVar(&initrd, "initrd", "", "initrd (path on the server)")
		fs.StringVar(&rootfs, "rootfs", "", "live root image (path on the server), optional")
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
		if p.Kernel, err = absPath("kernel", kernel); err != nil {
			return err
		}
		if p.Initrd, err = absPath("initrd", initrd); err != nil {
			return err
		}
		if p.RootFS, err = absPath("rootfs", rootfs); err != nil {
			return err
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
	fmt.Fprintln(tw, "NAME\tKERNEL\tINITRD\tLOCAL BOOT\tCMDLINE")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kernel, p.Initrd, p.Local, p.Cmdline)
	}
	return tw.Flush()
}

func runHost(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("host: want add, list, show, events, userdata, reprovision or delete")
	}
	verb := args[0]
	fs := flag.NewFlagSet("host "+verb, flag.ContinueOnError)
	co := clientFlags(fs)
	var profile, serial, name, siteFile, udFile, state string
	var secrets bool
	switch verb {
	case "add":
		fs.StringVar(&profile, "profile", "", "profile to install")
		fs.StringVar(&serial, "serial", "", "serial number from the manifest")
		fs.StringVar(&name, "name", "", "host name (unique; becomes stylus.site.name)")
		fs.StringVar(&siteFile, "site", "", "YAML file with the host's stylus.site fields")
		fs.StringVar(&udFile, "userdata", "", "YAML file with per-host user-data overrides")
	case "list":
		fs.StringVar(&state, "state", "", "only hosts in this state")
		fs.StringVar(&profile, "profile", "", "only hosts with this profile")
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
		spec := api.HostSpec{MAC: pos[0], Profile: &profile, Serial: &serial, Name: &name}
		if siteFile != "" {
			raw, err := readFileFlag("site", siteFile)
			if err != nil {
				return err
			}
			var site userdata.Site
			if err := yaml.Unmarshal([]byte(raw), &site); err != nil {
				return fmt.Errorf("--site %s: %w", siteFile, err)
			}
			spec.Site = &site
		}
		if udFile != "" {
			ud, err := readFileFlag("userdata", udFile)
			if err != nil {
				return err
			}
			spec.UserData = &ud
		}
		var h inventory.Host
		if err := c.do(ctx, http.MethodPost, "/hosts", spec, &h); err != nil {
			return err
		}
		return printHosts(c, out, []inventory.Host{h}, true)
	case "list":
		q := url.Values{}
		if state != "" {
			q.Set("state", state)
		}
		if profile != "" {
			q.Set("profile", profile)
		}
		path := "/hosts"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var hs []inventory.Host
		if err := c.do(ctx, http.MethodGet, path, nil, &hs); err != nil {
			return err
		}
		return printHosts(c, out, hs, false)
	case "show", "reprovision":
		path, err := one()
		if err != nil {
			return err
		}
		var h inventory.Host
		if verb == "show" {
			err = c.do(ctx, http.MethodGet, path, nil, &h)
		} else {
			err = c.do(ctx, http.MethodPost, path+"/reprovision", nil, &h)
		}
		if err != nil {
			return err
		}
		return printHosts(c, out, []inventory.Host{h}, true)
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

func printHosts(c *client, out io.Writer, hs []inventory.Host, single bool) error {
	if c.output == "json" {
		if single && len(hs) == 1 {
			return c.printJSON(out, hs[0])
		}
		if hs == nil {
			hs = []inventory.Host{}
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", h.MAC, dash(h.Name), dash(h.Profile), h.State, h.Attempt, dash(h.LastIP), dash(serial), inst)
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
	return tw.Flush()
}
