package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

// filterFlags select hosts for list, export and the bulk actions.
type filterFlags struct {
	state, profile string
	tags           multiFlag
	stalled, all   bool
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ";") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func addFilterFlags(fs *flag.FlagSet, bulk bool) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.state, "state", "", "only hosts in this state")
	if fs.Lookup("profile") == nil { // "host assign" uses --profile for the profile it assigns
		fs.StringVar(&f.profile, "profile", "", "only hosts with this profile")
	}
	fs.Var(&f.tags, "tag", "only hosts with this tag, k=v (repeatable)")
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

func bulkAction(ctx context.Context, c *client, out io.Writer, path string, body any, verb string) error {
	var res api.BulkResult
	if err := c.do(ctx, http.MethodPost, path, body, &res); err != nil {
		return err
	}
	if c.output == "json" {
		return c.printJSON(out, res)
	}
	fmt.Fprintf(out, "%s %d host(s)\n", verb, len(res.Changed))
	for _, m := range res.Changed {
		fmt.Fprintln(out, "  "+m)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(out, "  %s: not %s: %s\n", e.MAC, verb, e.Error)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d host(s) not %s", len(res.Errors), verb)
	}
	return nil
}

// runHostRack holds the rack-level host commands: manifests, reports,
// assignment, updates and the NoCloud seed.
func runHostRack(ctx context.Context, verb string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("host "+verb, flag.ContinueOnError)
	co := clientFlags(fs)
	var ff *filterFlags
	var format, outFile, profile string
	var name, serial, siteFile, udFile, dhcpAddr, otherMACs optString
	switch verb {
	case "export":
		ff = addFilterFlags(fs, false)
		fs.StringVar(&format, "format", "csv", "csv or json")
		fs.StringVar(&outFile, "o", "", "write to this file instead of standard output")
	case "assign":
		fs.StringVar(&profile, "profile", "", "profile to assign")
		ff = addFilterFlags(fs, true)
	case "update":
		fs.Var(&name, "name", "new host name")
		fs.Var(&serial, "serial", "new serial")
		fs.Var(&dhcpAddr, "dhcp-address", "IPv4 address reserved for the host in full DHCP mode (\"\" removes the reservation)")
		fs.Var(&otherMACs, "other-macs", "the machine's other NICs, MAC,MAC (replaces them; \"\" removes them)")
		fs.StringVar(&profile, "profile", "", "new profile")
		fs.Var(&siteFile, "site", "YAML file with the host's stylus.site fields (replaces them)")
		fs.Var(&udFile, "userdata", "YAML file with per-host user-data overrides (replaces them)")
	case "cidata":
		fs.StringVar(&outFile, "o", "", "write the ISO here (required)")
	}
	pos, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	c, err := co.client()
	if err != nil {
		return err
	}
	switch verb {
	case "import":
		if err := wantArgs("host import", pos, 1, "FILE.csv"); err != nil {
			return err
		}
		body, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		raw, err := c.send(ctx, http.MethodPost, "/hosts/import", "text/csv", body)
		if err != nil {
			return err
		}
		if c.output == "json" {
			_, err = out.Write(raw)
			return err
		}
		var res inventory.ImportResult
		if err := json.Unmarshal(raw, &res); err != nil {
			return err
		}
		fmt.Fprintf(out, "imported %s: %d created, %d updated\n", pos[0], res.Created, res.Updated)
		return nil
	case "export":
		if format != "csv" && format != "json" {
			return fmt.Errorf("--format %q: want csv or json", format)
		}
		q := ff.query()
		if q == "" {
			q = "?format=" + format
		} else {
			q += "&format=" + format
		}
		raw, err := c.send(ctx, http.MethodGet, "/hosts/export"+q, "", nil)
		if err != nil {
			return err
		}
		return writeOut(out, outFile, raw)
	case "assign":
		if profile == "" {
			return fmt.Errorf("host assign: --profile is required")
		}
		path := "/hosts/assign" + ff.query()
		if len(pos) == 0 && ff.query() == "" {
			return fmt.Errorf("host assign: give a MAC, a filter (--state, --tag) or --all")
		}
		if len(pos) == 1 {
			// One host by MAC: the same bulk route, filtered to nothing
			// but that host, would need a MAC filter; a PATCH says it.
			var h api.HostView
			if err := c.do(ctx, http.MethodPatch, "/hosts/"+url.PathEscape(pos[0]), api.HostSpec{Profile: &profile}, &h); err != nil {
				return err
			}
			return printHosts(c, out, []api.HostView{h}, true)
		}
		return bulkAction(ctx, c, out, path, api.AssignSpec{Profile: profile}, "assigned")
	case "update":
		if err := wantArgs("host update", pos, 1, "MAC"); err != nil {
			return err
		}
		spec := api.HostSpec{Name: name.ptr(), Serial: serial.ptr(), DHCPAddress: dhcpAddr.ptr(), OtherMACs: otherMACs.macList()}
		if profile != "" {
			spec.Profile = &profile
		}
		if err := (*hostSpec)(&spec).readFiles(siteFile.v, udFile.v); err != nil {
			return err
		}
		var h api.HostView
		if err := c.do(ctx, http.MethodPatch, "/hosts/"+url.PathEscape(pos[0]), spec, &h); err != nil {
			return err
		}
		return printHosts(c, out, []api.HostView{h}, true)
	case "cidata":
		if err := wantArgs("host cidata", pos, 1, "MAC"); err != nil {
			return err
		}
		if outFile == "" {
			return fmt.Errorf("host cidata: -o FILE is required")
		}
		raw, err := c.send(ctx, http.MethodGet, "/hosts/"+url.PathEscape(pos[0])+"/cidata.iso", "", nil)
		if err != nil {
			return err
		}
		return writeOut(out, outFile, raw)
	}
	return fmt.Errorf("host %s: unknown", verb)
}

// optString is a string flag that knows whether it was given, so that
// "--name ”" clears a name while an absent --name leaves it.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(v string) error { o.v, o.set = v, true; return nil }
func (o *optString) ptr() *string {
	if !o.set {
		return nil
	}
	return &o.v
}

// macList returns the comma-separated MACs of an --other-macs flag, or
// nil when the flag was not given ("" gives an empty list: none).
func (o *optString) macList() *[]string {
	if !o.set {
		return nil
	}
	macs := []string{}
	for _, m := range strings.Split(o.v, ",") {
		if m = strings.TrimSpace(m); m != "" {
			macs = append(macs, m)
		}
	}
	return &macs
}

func writeOut(out io.Writer, file string, b []byte) error {
	if file == "" || file == "-" {
		_, err := out.Write(b)
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// hostSpec adds the CLI's file flags to api.HostSpec.
type hostSpec api.HostSpec

// readFiles fills Site from a YAML file and UserData from a file; an
// empty path leaves the field alone.
func (spec *hostSpec) readFiles(sitePath, userdataPath string) error {
	if sitePath != "" {
		raw, err := readFileFlag("site", sitePath)
		if err != nil {
			return err
		}
		var site userdata.Site
		if err := yaml.Unmarshal([]byte(raw), &site); err != nil {
			return fmt.Errorf("--site %s: %w", sitePath, err)
		}
		spec.Site = &site
	}
	if userdataPath != "" {
		ud, err := readFileFlag("userdata", userdataPath)
		if err != nil {
			return err
		}
		spec.UserData = &ud
	}
	return nil
}
