package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

// Rack-level operations: manifests in, reports out, and actions on many
// hosts at once chosen by a filter.

// parseFilter reads state, profile and tag (k=v;k=v, repeatable) from q.
func parseFilter(q url.Values) (inventory.Filter, error) {
	var f inventory.Filter
	if v := q.Get("state"); v != "" {
		st, err := inventory.ParseState(v)
		if err != nil {
			return f, fmt.Errorf("query state: %w", err)
		}
		f.State = st
	}
	f.Profile = q.Get("profile")
	for _, t := range q["tag"] {
		tags, err := inventory.ParseTags(t)
		if err != nil {
			return f, fmt.Errorf("query tag: %w", err)
		}
		for k, v := range tags {
			if f.Tags == nil {
				f.Tags = map[string]string{}
			}
			f.Tags[k] = v
		}
	}
	return f, nil
}

// report judges hosts against their profiles' install timeouts.
func (s *Server) report(hosts []inventory.Host) ([]inventory.ReportRow, error) {
	ps, err := s.cfg.Store.Profiles()
	if err != nil {
		return nil, err
	}
	return inventory.Report(hosts, ps, s.cfg.Now()), nil
}

// hostsReport lists the hosts matching f with their report rows.
func (s *Server) hostsReport(f inventory.Filter) ([]inventory.Host, []inventory.ReportRow, error) {
	hosts, err := s.cfg.Store.Hosts(f)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.report(hosts)
	return hosts, rows, err
}

// filter reads the request's host filter, answering 400 when it is bad.
func filter(w http.ResponseWriter, r *http.Request) (inventory.Filter, bool) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation", err.Error())
		return f, false
	}
	return f, true
}

func (s *Server) importHosts(w http.ResponseWriter, r *http.Request) {
	recs, err := inventory.ParseCSV(http.MaxBytesReader(w, r.Body, inventory.MaxImportBytes))
	res, err := s.cfg.Store.ImportParsed(recs, err)
	if err == nil {
		s.cfg.Log.Info().Int("created", res.Created).Int("updated", res.Updated).Msg("manifest imported")
		writeJSON(w, http.StatusOK, res)
		return
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("manifest larger than %d bytes", inventory.MaxImportBytes))
		return
	}
	var ie *inventory.ImportError
	if errors.As(err, &ie) {
		var b ErrorBody
		b.Error.Code, b.Error.Message, b.Error.Rows = "validation", ie.Error(), ie.Rows
		writeJSON(w, http.StatusBadRequest, b)
		return
	}
	writeStoreError(w, err)
}

// exportHosts is the report, filtered like a list (stalled included).
// Its CSV form is a manifest (inventory.WriteExportCSV): it imports
// back. Secret fields appear only with includeSecrets=1.
func (s *Server) exportHosts(w http.ResponseWriter, r *http.Request) {
	f, ok := filter(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	secrets, err := queryBool(q, "includeSecrets")
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation", err.Error())
		return
	}
	_, rows, err := s.hostsReport(f)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if q.Get("stalled") == "true" {
		rows = slices.DeleteFunc(rows, func(r inventory.ReportRow) bool { return !r.Stalled })
	}
	for i := range rows {
		tl, err := s.timeline(rows[i].MAC)
		if err != nil && !errors.Is(err, inventory.ErrNotFound) { // deleted since the list: no boots
			writeStoreError(w, err)
			return
		}
		rows[i].SetLastBoot(tl)
	}
	switch format := q.Get("format"); format {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		inventory.WriteReportJSON(w, rows)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="stagehand-report.csv"`)
		inventory.WriteExportCSV(w, rows, secrets)
	default:
		writeError(w, http.StatusBadRequest, "validation", fmt.Sprintf("query format %q: want csv or json", format))
	}
}

// queryBool reads a boolean query parameter: absent is false.
func queryBool(q url.Values, name string) (bool, error) {
	switch v := q.Get(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("query %s %q: want 1 or 0", name, v)
	}
}

// BulkResult is the outcome of an action on many hosts.
type BulkResult struct {
	Changed []string          `json:"changed"`
	Errors  []BulkResultError `json:"errors,omitempty"`
}

// BulkResultError is one host the action could not be applied to.
type BulkResultError struct {
	MAC   string `json:"mac"`
	Error string `json:"error"`
}

// bulk applies fn to every host matching the request's filter. An empty
// filter must be asked for with all=true: "reprovision" with a typo'd
// filter must not reinstall the rack.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, fn func(mac string) error) {
	f, ok := filter(w, r)
	if !ok {
		return
	}
	if f.Empty() && r.URL.Query().Get("all") != "true" {
		writeError(w, http.StatusBadRequest, "validation", "no filter given: add state, profile or tag, or all=true to act on every host")
		return
	}
	hosts, err := s.cfg.Store.Hosts(f)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	res := BulkResult{Changed: []string{}}
	for _, h := range hosts {
		if err := fn(h.MAC); err != nil {
			res.Errors = append(res.Errors, BulkResultError{MAC: h.MAC, Error: err.Error()})
			continue
		}
		res.Changed = append(res.Changed, h.MAC)
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) reprovisionMany(w http.ResponseWriter, r *http.Request) {
	s.bulk(w, r, func(mac string) error {
		_, err := s.cfg.Store.Reprovision(mac)
		return err
	})
}

// AssignSpec is the body of an assign request.
type AssignSpec struct {
	Profile string `json:"profile"`
	// Confirm is the operator's yes to handing a profile that carries
	// secrets to discovered hosts (see assignMany).
	Confirm bool `json:"confirm,omitempty"`
}

// assignMany gives every matching host a profile: how discovered hosts
// become ready after an operator has looked at them. A discovered
// record is only a MAC some machine named, and anyone on the network
// can name one: when the profile's user-data carries secrets
// (userdata.HasSecrets: what an export without --include-secrets or a
// preview masks), assigning it to discovered hosts needs Confirm, and
// without it the answer is 409 listing those hosts and nothing changes.
func (s *Server) assignMany(w http.ResponseWriter, r *http.Request) {
	var spec AssignSpec
	if !decode(w, r, &spec) {
		return
	}
	if spec.Profile == "" {
		writeError(w, http.StatusBadRequest, "validation", "field profile: required")
		return
	}
	p, err := s.cfg.Store.Profile(spec.Profile)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if !spec.Confirm && userdata.HasSecrets([]byte(p.UserData)) {
		f, ok := filter(w, r)
		if !ok {
			return
		}
		hosts, err := s.cfg.Store.Hosts(f)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		if msg := unconfirmed(p.Name, hosts); msg != "" {
			writeError(w, http.StatusConflict, "confirm", msg)
			return
		}
	}
	s.bulk(w, r, func(mac string) error {
		_, err := s.cfg.Store.UpdateHost(mac, func(h *inventory.Host) error {
			h.Profile = spec.Profile
			return nil
		})
		return err
	})
}

// maxListed bounds the hosts an unconfirmed assign names.
const maxListed = 50

// unconfirmed is the refusal of assigning profile, which carries
// secrets, to the discovered ones of hosts without Confirm: it lists
// them with what they reported. "" when none is discovered.
func unconfirmed(profile string, hosts []inventory.Host) string {
	var b strings.Builder
	n := 0
	for _, h := range hosts {
		if h.State != inventory.StateDiscovered {
			continue
		}
		if n++; n <= maxListed {
			fmt.Fprintf(&b, "\n  %s  %s", h.MAC, h.Facts.Describe(h.LastIP))
		}
	}
	if n == 0 {
		return ""
	}
	if n > maxListed {
		fmt.Fprintf(&b, "\n  and %d more", n-maxListed)
	}
	return fmt.Sprintf("profile %s carries secrets in its user-data, and %d of these hosts are only discovered (any machine can name a MAC); nothing assigned. "+
		"Check them, then confirm (host assign --yes):%s", profile, n, b.String())
}
