package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory"
)

func (a *app) hostCommand() *cobra.Command {
	g := group("host", "hosts: add, update, list, show, events, provision", "add, update, list, show, events, userdata, reprovision, assign, import, export, cidata or delete")
	g.AddCommand(a.hostAddCommand(), a.hostUpdateCommand(), a.hostListCommand(), a.hostShowCommand(),
		a.hostEventsCommand(), a.hostUserdataCommand(), a.hostReprovisionCommand(), a.hostAssignCommand(),
		a.hostImportCommand(), a.hostExportCommand(), a.hostCidataCommand(), a.hostDeleteCommand())
	return g
}

func (a *app) hostAddCommand() *cobra.Command {
	var hf *hostFlags
	cmd := &cobra.Command{
		Use:   "add MAC --profile NAME [--serial S] [--name N] [--other-macs MAC,MAC] [--site FILE.yaml] [--userdata FILE] [field flags]",
		Short: "add a host (without --profile it waits as discovered)",
		Args:  nArgs(1, "MAC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := hf.spec(cmd.Flags(), args[0], nil)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var h api.HostView
			if err := c.do(a.ctx, http.MethodPost, "/hosts", spec, &h); err != nil {
				return err
			}
			return printHosts(c, a.out, []api.HostView{h}, true)
		},
	}
	hf = newHostFlags(cmd.Flags())
	return cmd
}

func (a *app) hostUpdateCommand() *cobra.Command {
	var hf *hostFlags
	cmd := &cobra.Command{
		Use:   "update MAC [--name N] [--serial S] [--profile P] [--other-macs MAC,MAC] [--site FILE.yaml] [--userdata FILE] [field flags]",
		Short: "change the fields given (\"\" clears one); a site flag changes that site field only",
		Args:  nArgs(1, "MAC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			current := func() (inventory.Host, error) {
				h, err := getHost(a.ctx, c, args[0])
				return h.Host, err
			}
			spec, err := hf.spec(cmd.Flags(), args[0], current)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("profile") && *hf.vals["profile"] == "" {
				spec.Profile = nil // as before: an empty --profile changes nothing
			}
			var h api.HostView
			if err := c.do(a.ctx, http.MethodPatch, "/hosts/"+url.PathEscape(args[0]), spec, &h); err != nil {
				return err
			}
			return printHosts(c, a.out, []api.HostView{h}, true)
		},
	}
	hf = newHostFlags(cmd.Flags())
	return cmd
}

func (a *app) hostListCommand() *cobra.Command {
	var ff *filterFlags
	cmd := &cobra.Command{
		Use: "list [--state S] [--profile P] [--tag k=v] [--stalled]", Short: "list hosts", Args: nArgs(0, "no arguments"),
		RunE: a.withClient(func(c *client, _ []string) error {
			var hs []api.HostView
			if err := c.do(a.ctx, http.MethodGet, "/hosts"+ff.query(), nil, &hs); err != nil {
				return err
			}
			return printHosts(c, a.out, hs, false)
		}),
	}
	ff = addFilterFlags(cmd.Flags(), false)
	return cmd
}

func (a *app) hostShowCommand() *cobra.Command {
	return &cobra.Command{
		Use: "show MAC", Short: "the whole record of a host (secrets masked)", Args: nArgs(1, "MAC"),
		RunE: a.withClient(func(c *client, args []string) error {
			h, err := getHost(a.ctx, c, args[0])
			if err != nil {
				return err
			}
			return showHost(c, a.out, h)
		}),
	}
}

func (a *app) hostUserdataCommand() *cobra.Command {
	var secrets bool
	cmd := &cobra.Command{
		Use: "userdata MAC [--secrets]", Short: "the user-data the host's installer would get", Args: nArgs(1, "MAC"),
		RunE: a.withClient(func(c *client, args []string) error {
			path := "/hosts/" + url.PathEscape(args[0]) + "/userdata"
			if secrets {
				path += "?secrets=true"
			}
			raw, err := c.raw(a.ctx, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printJSON(a.out, map[string]string{"userdata": string(raw)})
			}
			_, err = a.out.Write(raw)
			return err
		}),
	}
	cmd.Flags().BoolVar(&secrets, "secrets", false, "show secrets instead of masking them")
	return cmd
}

func (a *app) hostReprovisionCommand() *cobra.Command {
	var ff *filterFlags
	cmd := &cobra.Command{
		Use:   "reprovision MAC | --state S | --profile P | --tag k=v | --all",
		Short: "send hosts back to ready for a new install",
		Args:  cobra.MaximumNArgs(1),
		RunE: a.withClient(func(c *client, args []string) error {
			if len(args) == 0 {
				if ff.query() == "" {
					// The server would answer with its query syntax (all=true);
					// tell a shell user the flag.
					return errors.New("host reprovision: give a MAC, a filter (--state, --profile, --tag) or --all")
				}
				return bulkAction(a, c, "/hosts/reprovision"+ff.query(), nil, "reprovisioned")
			}
			var h api.HostView
			if err := c.do(a.ctx, http.MethodPost, "/hosts/"+url.PathEscape(args[0])+"/reprovision", nil, &h); err != nil {
				return err
			}
			return printHosts(c, a.out, []api.HostView{h}, true)
		}),
	}
	ff = addFilterFlags(cmd.Flags(), true)
	return cmd
}

func (a *app) hostDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use: "delete MAC", Short: "delete a host and its events", Args: nArgs(1, "MAC"),
		RunE: a.withClient(func(c *client, args []string) error {
			h, err := getHost(a.ctx, c, args[0])
			if err != nil {
				return err
			}
			if err := c.do(a.ctx, http.MethodDelete, "/hosts/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			return a.printDeleted(c, "host", h.Ident(), maskSecrets(h))
		}),
	}
}

func printHosts(c *client, out io.Writer, hs []api.HostView, single bool) error {
	if c.output == "json" {
		for i := range hs {
			hs[i] = maskSecrets(hs[i])
		}
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cell(h.MAC), cell(h.Name), cell(h.Profile), state, h.Attempt, cell(h.LastIP), cell(serial), inst)
	}
	return tw.Flush()
}

// masked stands in for a secret in output.
const masked = "********"

// maskSecrets blanks the secret fields of inventory.Fields.
func maskSecrets(h api.HostView) api.HostView {
	for _, f := range inventory.Fields {
		if f.Secret && f.Get(&h.Host) != "" {
			f.Set(&h.Host, masked)
		}
	}
	return h
}

// filterFlags select hosts for list, export and the bulk actions.
type filterFlags struct {
	state, profile string
	tags           []string
	stalled, all   bool
}

func addFilterFlags(fs *pflag.FlagSet, bulk bool) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.state, "state", "", "only hosts in this state")
	if fs.Lookup("profile") == nil { // "host assign" uses --profile for the profile it assigns
		fs.StringVar(&f.profile, "profile", "", "only hosts with this profile")
	}
	fs.StringArrayVar(&f.tags, "tag", nil, "only hosts with this tag, k=v (repeatable)")
	if bulk {
		fs.BoolVar(&f.all, "all", false, "act on every host (required when no other filter is given)")
	} else {
		fs.BoolVar(&f.stalled, "stalled", false, "only hosts whose install outran the profile's timeout")
	}
	return f
}

func (f *filterFlags) query() string {
	q := url.Values{}
	if f.state != "" {
		q.Set("state", f.state)
	}
	if f.profile != "" {
		q.Set("profile", f.profile)
	}
	for _, t := range f.tags {
		q.Add("tag", t)
	}
	if f.stalled {
		q.Set("stalled", "true")
	}
	if f.all {
		q.Set("all", "true")
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func bulkAction(a *app, c *client, path string, body any, verb string) error {
	var res api.BulkResult
	if err := c.do(a.ctx, http.MethodPost, path, body, &res); err != nil {
		return err
	}
	if c.output == "json" {
		return c.printJSON(a.out, res)
	}
	fmt.Fprintf(a.out, "%s %d host(s)\n", verb, len(res.Changed))
	for _, m := range res.Changed {
		fmt.Fprintln(a.out, "  "+m)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(a.out, "  %s: not %s: %s\n", e.MAC, verb, safetext.Line(e.Error))
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d host(s) not %s", len(res.Errors), verb)
	}
	return nil
}

// joinNonEmpty joins the non-empty parts.
func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
