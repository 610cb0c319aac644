package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

// hostFlags are host add|update's flags: one per field of
// inventory.Fields, and --site for a whole site from a YAML file.
type hostFlags struct {
	vals map[string]*string // field name → flag value
	site string
}

func newHostFlags(fs *pflag.FlagSet) *hostFlags {
	hf := &hostFlags{vals: map[string]*string{}}
	for _, f := range inventory.Fields {
		if f.Flag == "" {
			continue
		}
		v := new(string)
		fs.StringVar(v, f.Flag, "", f.Usage)
		hf.vals[f.Name] = v
	}
	fs.StringVar(&hf.site, "site", "", "YAML file holding the host's site mapping (stylus.site's fields: paletteEndpoint, network, tags...); replaces the site, the site flags override it")
	return hf
}

// siteField reports whether a field lives in the site, which the API
// takes whole.
func siteField(f inventory.Field) bool { return strings.HasPrefix(f.JSON, "site.") }

// spec builds the API request from the flags given. current returns the
// stored host, asked for only when a site flag changes part of a site
// that no --site file gives whole.
func (hf *hostFlags) spec(fs *pflag.FlagSet, mac string, current func() (inventory.Host, error)) (api.HostSpec, error) {
	h := inventory.Host{MAC: mac}
	set := map[string]bool{}
	siteTouched := false
	if hf.site != "" {
		site, err := readSiteFile(hf.site)
		if err != nil {
			return api.HostSpec{}, err
		}
		h.Site, siteTouched = site, true
	}
	for _, f := range inventory.Fields {
		if f.Flag == "" || !fs.Changed(f.Flag) {
			continue
		}
		if siteField(f) && !siteTouched {
			if current != nil {
				cur, err := current()
				if err != nil {
					return api.HostSpec{}, err
				}
				h.Site = cur.Site
			}
			siteTouched = true
		}
		v := *hf.vals[f.Name]
		if f.Kind == inventory.KindDocument {
			var err error
			if v, err = readFileFlag(f.Flag, v); err != nil {
				return api.HostSpec{}, err
			}
		}
		if err := f.Set(&h, v); err != nil {
			return api.HostSpec{}, fmt.Errorf("--%s: %v", f.Flag, err)
		}
		set[f.Name] = true
	}
	if siteTouched {
		for _, f := range inventory.Fields {
			if siteField(f) {
				set[f.Name] = true
			}
		}
	}
	return specFor(h, set)
}

// specFor is the HostSpec that sets the fields named in set to h's
// values: each field's top JSON member is copied (as empty when h's is,
// so that "--name ”" clears a name).
func specFor(h inventory.Host, set map[string]bool) (api.HostSpec, error) {
	var spec api.HostSpec
	b, err := json.Marshal(h)
	if err != nil {
		return spec, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return spec, err
	}
	out := map[string]json.RawMessage{}
	for _, f := range inventory.Fields {
		if !set[f.Name] || f.Name == "mac" {
			continue
		}
		top, _, _ := strings.Cut(f.JSON, ".")
		v, ok := all[top]
		if !ok {
			v = json.RawMessage(`""`)
			if f.Kind == inventory.KindMACList {
				v = json.RawMessage(`[]`)
			}
		}
		out[top] = v
	}
	b, err = json.Marshal(out)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	spec.MAC = h.MAC
	return spec, err
}

// readSiteFile reads a --site file strictly, as the API and --config
// read theirs: an unknown key is an error naming it, and a file in the
// seed's "stylus: site:" shape is refused with what to give instead.
func readSiteFile(path string) (userdata.Site, error) {
	var site userdata.Site
	raw, err := readFileFlag("site", path)
	if err != nil {
		return site, err
	}
	var top map[string]any
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		return site, fmt.Errorf("--site %s: %w", path, err)
	}
	if _, ok := top["stylus"]; ok {
		return site, fmt.Errorf("--site %s: key stylus: the file holds the site mapping itself (paletteEndpoint:, network:, tags: ...), not stylus: site: around it; give the mapping under stylus.site", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&site); err != nil && !errors.Is(err, io.EOF) {
		return site, fmt.Errorf("--site %s: %s", path, strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "), "\n  ", "; "))
	}
	return site, nil
}

// getHost reads one host through the API.
func getHost(ctx context.Context, c *client, mac string) (api.HostView, error) {
	var h api.HostView
	err := c.do(ctx, http.MethodGet, "/hosts/"+url.PathEscape(mac), nil, &h)
	return h, err
}
