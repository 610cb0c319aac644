package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory"
)

// The rack-level host commands: manifests, reports, assignment and the
// NoCloud seed.

func (a *app) hostAssignCommand() *cobra.Command {
	var profile string
	var yes bool
	var ff *filterFlags
	cmd := &cobra.Command{
		Use:   "assign MAC --profile P | --profile P --state discovered [--tag k=v] [--yes] | --all",
		Short: "give hosts a profile: how discovered hosts become ready",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if profile == "" {
				return fmt.Errorf("host assign: --profile is required")
			}
			if len(args) == 0 && ff.query() == "" {
				return fmt.Errorf("host assign: give a MAC, a filter (--state, --tag) or --all")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				// One host by MAC: a PATCH says it.
				var h api.HostView
				if err := c.do(a.ctx, http.MethodPatch, "/hosts/"+url.PathEscape(args[0]), api.HostSpec{Profile: &profile}, &h); err != nil {
					return err
				}
				return printHosts(c, a.out, []api.HostView{h}, true)
			}
			return bulkAction(a, c, "/hosts/assign"+ff.query(), api.AssignSpec{Profile: profile, Confirm: yes}, "assigned")
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "profile to assign")
	cmd.Flags().BoolVar(&yes, "yes", false, "assign a profile whose user-data carries secrets to discovered hosts too (without it, they are listed and nothing changes)")
	ff = addFilterFlags(cmd.Flags(), true)
	return cmd
}

func (a *app) hostImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE.csv",
		Short: "rack manifest: all rows or none (an export imports back)",
		Args:  nArgs(1, "FILE.csv"),
		RunE: a.withClient(func(c *client, args []string) error {
			body, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			raw, err := c.send(a.ctx, http.MethodPost, "/hosts/import", "text/csv", body)
			if err != nil {
				return err
			}
			if c.output == "json" {
				_, err = a.out.Write(raw)
				return err
			}
			var res inventory.ImportResult
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "imported %s: %d created, %d updated\n", args[0], res.Created, res.Updated)
			return err
		}),
	}
}

func (a *app) hostExportCommand() *cobra.Command {
	var format, file string
	var secrets bool
	var ff *filterFlags
	cmd := &cobra.Command{
		Use:   "export [--format csv|json] [-f FILE] [--include-secrets] [filters]",
		Short: "the ready-to-ship report; its CSV is a manifest that host import reads back",
		Long: `The ready-to-ship report of the hosts the filters select (as host list).
Its CSV form is a manifest: the report's columns, then every host field the
report lacks under its manifest column name; "host import" reads the host
fields back and ignores the report-only columns (state, last_ip, ...).
A cell a spreadsheet would run as a formula (one beginning with =, +, -,
@, tab or CR) is written behind a ', which "host import" drops again.
Secret fields (edgeHostToken) are left out unless --include-secrets is
given; importing a file without them leaves the stored secrets alone.`,
		Args: nArgs(0, "no arguments (the file is -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("format") && a.opts.output == "json" {
				format = "json" // -o json asks for JSON when --format does not say
			}
			if format != "csv" && format != "json" {
				return fmt.Errorf("--format %q: want csv or json", format)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			q, _ := url.ParseQuery(ff.query()[min(1, len(ff.query())):])
			q.Set("format", format)
			if secrets {
				q.Set("includeSecrets", "1")
			}
			raw, err := c.send(a.ctx, http.MethodGet, "/hosts/export?"+q.Encode(), "", nil)
			if err != nil {
				return err
			}
			if format == "json" {
				raw = safetext.JSON(raw)
			}
			return writeOut(a.out, file, raw)
		},
	}
	ff = addFilterFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json (default json with -o json)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "write to this file instead of standard output")
	cmd.Flags().BoolVar(&secrets, "include-secrets", false, "include secret fields (edgeHostToken); keep the file safe")
	return cmd
}

func (a *app) hostCidataCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "cidata MAC -f FILE.iso",
		Short: "NoCloud seed for virtual-media boots",
		Args:  nArgs(1, "MAC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("host cidata: -f FILE is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.send(a.ctx, http.MethodGet, "/hosts/"+url.PathEscape(args[0])+"/cidata.iso", "", nil)
			if err != nil {
				return err
			}
			if err := writeOut(a.out, file, raw); err != nil {
				return err
			}
			if c.output == "json" {
				return c.printJSON(a.out, map[string]any{"file": file, "bytes": len(raw)})
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the ISO here (required)")
	return cmd
}

func writeOut(out io.Writer, file string, b []byte) error {
	if file == "" || file == "-" {
		_, err := out.Write(b)
		return err
	}
	return os.WriteFile(file, b, 0o600)
}
