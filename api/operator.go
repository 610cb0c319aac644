package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/userdata"
)

// maxBody bounds operator request bodies.
const maxBody = 1 << 20

// operatorRoutes adds the operator API under /api/v1, each route behind
// the bearer token. They sit on the top router rather than a subrouter:
// gorilla/mux answers a wrong method on a subrouter's route with 404, as
// if the route did not exist (gorilla/mux#751), where the top router
// says 405.
func (s *Server) operatorRoutes(r *mux.Router) {
	handle := func(path string, h http.HandlerFunc) *mux.Route {
		return r.Handle("/api/v1"+path, s.auth(h))
	}
	handle("/hosts", s.listHosts).Methods(http.MethodGet)
	handle("/hosts", s.createHost).Methods(http.MethodPost)
	// Before /hosts/{mac}, which would match these names as MACs.
	handle("/hosts/import", s.importHosts).Methods(http.MethodPost)
	handle("/hosts/export", s.exportHosts).Methods(http.MethodGet)
	handle("/hosts/reprovision", s.reprovisionMany).Methods(http.MethodPost)
	handle("/hosts/assign", s.assignMany).Methods(http.MethodPost)
	// Any other method on those four is 405, not a lookup of a host whose
	// "MAC" is "import" (400) by the routes below.
	for _, p := range []string{"/hosts/import", "/hosts/export", "/hosts/reprovision", "/hosts/assign"} {
		handle(p, s.methodNotAllowed)
	}
	handle("/hosts/{mac}", s.getHost).Methods(http.MethodGet)
	handle("/hosts/{mac}", s.updateHost).Methods(http.MethodPatch, http.MethodPut)
	handle("/hosts/{mac}", s.deleteHost).Methods(http.MethodDelete)
	handle("/hosts/{mac}/reprovision", s.reprovisionHost).Methods(http.MethodPost)
	handle("/hosts/{mac}/events", s.hostEvents).Methods(http.MethodGet)
	handle("/hosts/{mac}/userdata", s.previewUserData).Methods(http.MethodGet)
	handle("/hosts/{mac}/cidata.iso", s.cidata).Methods(http.MethodGet)
	handle("/profiles", s.listProfiles).Methods(http.MethodGet)
	// POST creates and refuses an existing name; PUT replaces or creates
	// (as it always did); PATCH changes only the members given.
	handle("/profiles", s.createProfile).Methods(http.MethodPost)
	handle("/profiles/{name}", s.getProfile).Methods(http.MethodGet)
	handle("/profiles/{name}", s.putProfile).Methods(http.MethodPut)
	handle("/profiles/{name}", s.patchProfile).Methods(http.MethodPatch)
	handle("/profiles/{name}", s.deleteProfile).Methods(http.MethodDelete)
	handle("/status", s.status).Methods(http.MethodGet)
	handle("/backup", s.backup).Methods(http.MethodGet)
	handle("/events", s.eventStream).Methods(http.MethodGet)
}

// decode reads one bounded JSON object, refusing unknown fields so a
// typo in a field name is an error rather than a silently ignored value.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", maxBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_json", "malformed JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad_json", "malformed JSON body: more than one value")
		return false
	}
	return true
}

// HostView is a host as the API shows it: no token hash, and whether
// its attempt has outrun its profile's install timeout.
type HostView struct {
	inventory.Host
	Stalled bool `json:"stalled"`
	// Timeline is the host's boot attempts, oldest first
	// (inventory.Timeline); only GET of one host reads its events for it.
	Timeline []inventory.Attempt `json:"timeline,omitempty"`
}

func views(hosts []inventory.Host, rows []inventory.ReportRow) []HostView {
	out := make([]HostView, len(hosts))
	for i, h := range hosts {
		out[i] = HostView{Host: h.Public(), Stalled: rows[i].Stalled}
	}
	return out
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	f, ok := filter(w, r)
	if !ok {
		return
	}
	hosts, rows, err := s.hostsReport(f)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	out := views(hosts, rows)
	if r.URL.Query().Get("stalled") == "true" {
		kept := out[:0]
		for _, v := range out {
			if v.Stalled {
				kept = append(kept, v)
			}
		}
		out = kept
	}
	writeJSON(w, http.StatusOK, out)
}

// HostSpec is what an operator may set on a host: the JSON form of
// inventory.Fields (each field at its Field.JSON path). A member given
// (even empty) sets its fields; site replaces the whole site. A test
// checks that every field of the table has its path here.
type HostSpec struct {
	MAC      string         `json:"mac,omitempty"`
	Name     *string        `json:"name,omitempty"`
	Serial   *string        `json:"serial,omitempty"`
	Profile  *string        `json:"profile,omitempty"`
	Site     *userdata.Site `json:"site,omitempty"`
	UserData *string        `json:"userdata,omitempty"`
	// DHCPAddress is the address reserved for the host in full DHCP
	// mode; "" clears the reservation.
	DHCPAddress *string `json:"dhcpAddress,omitempty"`
	// OtherMACs are the machine's other NICs; [] clears them.
	OtherMACs *[]string `json:"otherMACs,omitempty"`
}

// Fields returns the spec as a host and the names of the fields it sets:
// a field is set when the top member of its JSON path is given.
func (spec HostSpec) Fields() (inventory.Host, map[string]bool) {
	var h inventory.Host
	var given map[string]json.RawMessage
	b, err := json.Marshal(spec)
	if err == nil {
		err = json.Unmarshal(b, &given)
	}
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil {
		panic("api: HostSpec does not round-trip through a Host: " + err.Error())
	}
	set := map[string]bool{}
	for _, f := range inventory.Fields {
		top, _, _ := strings.Cut(f.JSON, ".")
		if _, ok := given[top]; ok {
			set[f.Name] = true
		}
	}
	return h, set
}

func (spec HostSpec) apply(h *inventory.Host) {
	src, set := spec.Fields()
	inventory.MergeFields(h, &src, set)
}

// hostMAC is the {mac} of a host route, resolved: one of a host's other
// NICs (Host.OtherMACs) names that host, so an operator can look a
// machine up by whichever MAC is on the label in front of them.
func (s *Server) hostMAC(r *http.Request) string {
	mac := mux.Vars(r)["mac"]
	if key, err := s.cfg.Store.Resolve(mac); err == nil {
		return key
	}
	return mac
}

func (s *Server) createHost(w http.ResponseWriter, r *http.Request) {
	var spec HostSpec
	if !decode(w, r, &spec) {
		return
	}
	h := inventory.Host{MAC: spec.MAC}
	spec.apply(&h)
	h, err := s.cfg.Store.CreateHost(h)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.Public())
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.cfg.Store.Host(s.hostMAC(r))
	if err != nil {
		writeStoreError(w, err)
		return
	}
	rows, err := s.report([]inventory.Host{h})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	v := views([]inventory.Host{h}, rows)[0]
	if v.Timeline, err = s.timeline(h.MAC); err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// timeline is the boot attempts of the host with mac, from its events.
func (s *Server) timeline(mac string) ([]inventory.Attempt, error) {
	evs, err := s.cfg.Store.Events(mac)
	if err != nil {
		return nil, err
	}
	return inventory.Timeline(evs), nil
}

func (s *Server) updateHost(w http.ResponseWriter, r *http.Request) {
	var spec HostSpec
	if !decode(w, r, &spec) {
		return
	}
	h, err := s.cfg.Store.UpdateHost(s.hostMAC(r), func(h *inventory.Host) error {
		spec.apply(h)
		return nil
	})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.Public())
}

// deleteHost passes the MAC as given, not resolved: deleting a host needs
// its own MAC, and the store refuses another NIC's, naming its host.
func (s *Server) deleteHost(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Store.DeleteHost(mux.Vars(r)["mac"]); err != nil {
		writeStoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) reprovisionHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.cfg.Store.Reprovision(s.hostMAC(r))
	if err != nil {
		writeStoreError(w, err)
		return
	}
	s.cfg.Log.Info().Str("mac", h.MAC).Msg("host sent back to ready")
	writeJSON(w, http.StatusOK, h.Public())
}

func (s *Server) hostEvents(w http.ResponseWriter, r *http.Request) {
	ev, err := s.cfg.Store.Events(s.hostMAC(r))
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if ev == nil {
		ev = []inventory.Event{}
	}
	writeJSON(w, http.StatusOK, ev)
}

// hostAndProfile loads the {mac} host and its profile, answering the
// error itself when either is missing.
func (s *Server) hostAndProfile(w http.ResponseWriter, r *http.Request) (inventory.Host, inventory.Profile, bool) {
	h, err := s.cfg.Store.Host(s.hostMAC(r))
	if err != nil {
		writeStoreError(w, err)
		return h, inventory.Profile{}, false
	}
	p, err := s.cfg.Store.Profile(h.Profile)
	if err != nil {
		writeStoreError(w, err)
		return h, p, false
	}
	return h, p, true
}

// previewUserData renders what the host's installer would get, with a
// placeholder token, and secrets masked unless ?secrets=true.
func (s *Server) previewUserData(w http.ResponseWriter, r *http.Request) {
	h, p, ok := s.hostAndProfile(w, r)
	if !ok {
		return
	}
	doc, err := userdata.Render(s.userdataInput(h, p, "TOKEN"))
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "validation", fmt.Sprintf("host %s: %v", h.Ident(), err))
		return
	}
	if r.URL.Query().Get("secrets") != "true" {
		doc = userdata.Redact(doc)
	}
	w.Header().Set("Content-Type", "text/cloud-config; charset=utf-8")
	w.Write(doc)
}

func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cfg.Store.Profiles()
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if ps == nil {
		ps = []inventory.Profile{}
	}
	writeJSON(w, http.StatusOK, ps)
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Store.Profile(mux.Vars(r)["name"])
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) putProfile(w http.ResponseWriter, r *http.Request) {
	var p inventory.Profile
	if !decode(w, r, &p) {
		return
	}
	s.storeProfile(w, r, p)
}

// createProfile is POST /profiles: a new profile only, so that adding a
// profile under a name in use cannot wipe that profile's command line
// and user-data.
func (s *Server) createProfile(w http.ResponseWriter, r *http.Request) {
	var p inventory.Profile
	if !decode(w, r, &p) {
		return
	}
	if _, err := s.cfg.Store.Profile(p.Name); err == nil {
		writeError(w, http.StatusConflict, "exists", fmt.Sprintf("profile %s: already exists (change it with profile update, or PUT /api/v1/profiles/%s to replace it)", p.Name, p.Name))
		return
	}
	s.storeProfile(w, r, p)
}

// patchProfile is PATCH /profiles/{name}: the body's members are
// decoded over the stored profile, so those not given keep their value.
func (s *Server) patchProfile(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Store.Profile(mux.Vars(r)["name"])
	if err != nil {
		writeStoreError(w, err)
		return
	}
	name := p.Name
	p.Name = ""
	if !decode(w, r, &p) {
		return
	}
	if p.Name == "" {
		p.Name = name
	}
	s.storeProfile(w, r, p)
}

// storeProfile validates and writes p under the route's {name}, if any,
// and answers with the stored profile.
func (s *Server) storeProfile(w http.ResponseWriter, r *http.Request, p inventory.Profile) {
	if name := mux.Vars(r)["name"]; name != "" {
		if p.Name != "" && p.Name != name {
			writeError(w, http.StatusBadRequest, "validation", fmt.Sprintf("profile %s: field name: body says %q", name, p.Name))
			return
		}
		p.Name = name
	}
	if err := s.cfg.Store.PutProfile(p); err != nil {
		writeStoreError(w, err)
		return
	}
	p, err := s.cfg.Store.Profile(p.Name)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Store.DeleteProfile(mux.Vars(r)["name"]); err != nil {
		writeStoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Status is the rack at a glance.
type Status struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"byState"`
	// Stalled and Failed name the hosts that need a person.
	Stalled []string `json:"stalled"`
	Failed  []string `json:"failed"`
	// NextStall is when the next live, not yet stalled, attempt counts as
	// stalled: the one change to this status that no event announces.
	NextStall time.Time `json:"nextStall,omitzero"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	hosts, rows, err := s.hostsReport(inventory.Filter{})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	st := Status{Total: len(hosts), ByState: map[string]int{}, Stalled: []string{}, Failed: []string{}}
	for i, h := range hosts {
		st.ByState[h.State.String()]++
		at := rows[i].StallsAt
		switch {
		case rows[i].Stalled:
			st.Stalled = append(st.Stalled, h.Ident())
		case !at.IsZero() && (st.NextStall.IsZero() || at.Before(st.NextStall)):
			st.NextStall = at
		}
		if h.State == inventory.StateFailed {
			st.Failed = append(st.Failed, h.Ident())
		}
	}
	writeJSON(w, http.StatusOK, st)
}
