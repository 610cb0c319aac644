package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory"
)

// nArgs is cobra.ExactArgs with the CLI's message: "host show: want MAC,
// got 0 argument(s)".
func nArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: want %s, got %d argument(s)", commandName(cmd), what, len(args))
		}
		return nil
	}
}

// commandName is the command's path without "stagehand ".
func commandName(cmd *cobra.Command) string {
	p := cmd.CommandPath()
	if i := len("stagehand "); len(p) > i {
		return p[i:]
	}
	return p
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

// positiveDuration is a duration flag that refuses zero and negative
// values: "watch --interval 0s" would otherwise spin.
type positiveDuration struct{ d *time.Duration }

func (p positiveDuration) String() string {
	if p.d == nil || *p.d == 0 {
		return ""
	}
	return p.d.String()
}
func (p positiveDuration) Type() string { return "duration" }
func (p positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s or 5m", s)
	}
	if d <= 0 {
		return fmt.Errorf("%s: want a duration above zero", s)
	}
	*p.d = d
	return nil
}

// durationFlag adds a duration flag that must be above zero.
func durationFlag(fs *pflag.FlagSet, d *time.Duration, name string, def time.Duration, usage string) {
	*d = def
	fs.Var(positiveDuration{d}, name, usage)
}

// profileFlags are the flags of profile add and profile update.
type profileFlags struct {
	kernel, initrd, rootfs, cmdline, udFile, local, iso string
	timeout                                             time.Duration
}

func (pf *profileFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&pf.iso, "iso", "", "installer ISO on the server: kernel, initrd and rootfs are read from it ("+inventory.ISOKernel+", "+inventory.ISOInitrd+", "+inventory.ISORootFS+" unless given)")
	fs.StringVar(&pf.kernel, "kernel", "", "kernel image (path on the server, or inside --iso)")
	fs.StringVar(&pf.initrd, "initrd", "", "initrd (path on the server, or inside --iso)")
	fs.StringVar(&pf.rootfs, "rootfs", "", "live root image (path on the server, or inside --iso), optional")
	durationFlag(fs, &pf.timeout, "install-timeout", 0, "how long an install may take before the host shows as stalled (default 1h)")
	fs.StringVar(&pf.cmdline, "cmdline", "", "kernel command line; ${config_url}, ${rootfs_url}, ${server} are filled in")
	fs.StringVar(&pf.udFile, "userdata", "", "base user-data YAML file")
	fs.StringVar(&pf.local, "local-boot", "exit", "how installed hosts boot their disk: exit or sanboot")
}

// body is the profile's JSON members for the flags given (all of them
// for add): an update changes only what it names.
func (pf *profileFlags) body(fs *pflag.FlagSet, all bool) (map[string]any, error) {
	m := map[string]any{}
	given := func(n string) bool { return all || fs.Changed(n) }
	iso := pf.iso != "" || (!all && fs.Changed("iso"))
	if given("iso") {
		a, err := absPath("iso", pf.iso)
		if err != nil {
			return nil, err
		}
		m["iso"] = a
	}
	for _, f := range []struct {
		name, json string
		v          string
	}{{"kernel", "kernel", pf.kernel}, {"initrd", "initrd", pf.initrd}, {"rootfs", "rootfs", pf.rootfs}} {
		if !given(f.name) {
			continue
		}
		v := f.v
		if !iso { // paths inside an image stay as given
			a, err := absPath(f.name, v)
			if err != nil {
				return nil, err
			}
			v = a
		}
		m[f.json] = v
	}
	if given("cmdline") {
		m["cmdline"] = pf.cmdline
	}
	if given("local-boot") {
		m["localBoot"] = pf.local
	}
	if fs.Changed("install-timeout") {
		m["installTimeout"] = pf.timeout.String()
	}
	if given("userdata") {
		ud, err := readFileFlag("userdata", pf.udFile)
		if err != nil {
			return nil, err
		}
		m["userdata"] = ud
	}
	return m, nil
}

func (a *app) profileCommand() *cobra.Command {
	g := group("profile", "installer profiles: kernel, initrd, command line, base user-data", "add, update, list, show or delete")
	var addF, updF profileFlags
	add := &cobra.Command{
		Use:   "add NAME --kernel FILE --initrd FILE [--rootfs FILE] [--cmdline ARGS] [--userdata FILE] [--local-boot exit|sanboot] [--install-timeout D] | add NAME --iso FILE.iso",
		Short: "create a profile (refuses a name in use: see profile update)",
		Args:  nArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.putProfile(cmd, args[0], &addF, true)
		},
	}
	addF.add(add.Flags())
	upd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "change the flags given of a profile; the others keep their value",
		Args:  nArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.putProfile(cmd, args[0], &updF, false)
		},
	}
	updF.add(upd.Flags())
	list := &cobra.Command{
		Use: "list", Short: "list profiles", Args: nArgs(0, "no arguments"),
		RunE: a.withClient(func(c *client, _ []string) error {
			var ps []inventory.Profile
			if err := c.do(a.ctx, http.MethodGet, "/profiles", nil, &ps); err != nil {
				return err
			}
			if ps == nil {
				ps = []inventory.Profile{}
			}
			return printProfiles(c, a.out, ps, false)
		}),
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "one profile", Args: nArgs(1, "NAME"),
		RunE: a.withClient(func(c *client, args []string) error {
			var p inventory.Profile
			if err := c.do(a.ctx, http.MethodGet, "/profiles/"+url.PathEscape(args[0]), nil, &p); err != nil {
				return err
			}
			return printProfiles(c, a.out, []inventory.Profile{p}, true)
		}),
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "delete a profile no host uses", Args: nArgs(1, "NAME"),
		RunE: a.withClient(func(c *client, args []string) error {
			path := "/profiles/" + url.PathEscape(args[0])
			var p inventory.Profile
			if err := c.do(a.ctx, http.MethodGet, path, nil, &p); err != nil {
				return err
			}
			if err := c.do(a.ctx, http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			return a.printDeleted(c, "profile", p.Name, p)
		}),
	}
	g.AddCommand(add, upd, list, show, del)
	return g
}

// deleted is what a delete prints with --output json.
type deleted struct {
	Deleted any `json:"deleted"`
}

// printDeleted reports a deletion: the record as it was, in JSON, or one
// line.
func (a *app) printDeleted(c *client, what, name string, record any) error {
	if c.output == "json" {
		return c.printJSON(a.out, deleted{record})
	}
	_, err := fmt.Fprintf(a.out, "deleted %s %s\n", what, name)
	return err
}

// putProfile creates (POST) or updates (PATCH) profile name.
func (a *app) putProfile(cmd *cobra.Command, name string, pf *profileFlags, create bool) error {
	body, err := pf.body(cmd.Flags(), create)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var got inventory.Profile
	if create {
		body["name"] = name
		err = c.do(a.ctx, http.MethodPost, "/profiles", body, &got)
	} else {
		if len(body) == 0 {
			return fmt.Errorf("profile update %s: no flag given, nothing to change", name)
		}
		err = c.do(a.ctx, http.MethodPatch, "/profiles/"+url.PathEscape(name), body, &got)
	}
	if err != nil {
		return err
	}
	return printProfiles(c, a.out, []inventory.Profile{got}, true)
}

func printProfiles(c *client, out io.Writer, ps []inventory.Profile, single bool) error {
	if c.output == "json" {
		if single && len(ps) == 1 {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, k, i, r, p.Local, p.InstallTimeout(), safetext.Line(p.Cmdline))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell is a value as the CLI prints it in a table or an event line: one
// line with every control escaped (safetext.Line), "-" when empty. The
// store keeps a client's text escaped already; this is the second line
// of defence, for whatever an older store or a future path holds.
func cell(s string) string { return dash(safetext.Line(s)) }
