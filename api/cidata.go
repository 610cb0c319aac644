package api

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/iso9660"
	"github.com/stagehand-dev/stagehand/userdata"
)

// cidata builds a NoCloud seed image for a host that boots the installer
// from virtual media (the seed's VMware path) instead of the network.
// Handing out the seed starts an install attempt exactly as a stage-2
// script does: the user-data inside carries a fresh token, and the
// installer's callback moves the host to installed as usual.
func (s *Server) cidata(w http.ResponseWriter, r *http.Request) {
	st := s.cfg.Store
	h, p, ok := s.hostAndProfile(w, r)
	if !ok {
		return
	}
	// Render before starting the attempt, so an invalid configuration
	// changes nothing.
	if _, err := userdata.Render(s.userdataInput(h, p, "preview")); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "validation", fmt.Sprintf("host %s: %v", h.Ident(), err))
		return
	}
	h, token, err := st.BeginInstall(h.MAC, "")
	if err != nil {
		writeStoreError(w, err)
		return
	}
	doc, err := userdata.Render(s.userdataInput(h, p, token))
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "validation", fmt.Sprintf("host %s: %v", h.Ident(), err))
		return
	}
	name := h.Name
	if name == "" {
		name = h.MAC
	}
	meta := userdata.MetaData(fmt.Sprintf("%s-attempt-%d", h.MAC, h.Attempt), name)
	var img bytes.Buffer
	if err := iso9660.Write(&img, "cidata", []iso9660.WriteFile{{Name: "user-data", Data: doc}, {Name: "meta-data", Data: meta}}); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	s.cfg.Events.Record(h.MAC, "cidata", "NoCloud seed image issued")
	s.cfg.Log.Info().Str("mac", h.MAC).Int("attempt", h.Attempt).Msg("cidata seed issued")
	w.Header().Set("Content-Type", "application/x-iso9660-image")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="cidata-%s.iso"`, name))
	w.Write(img.Bytes())
}

// userdataInput is the one place the per-host render input is built.
func (s *Server) userdataInput(h inventory.Host, p inventory.Profile, token string) userdata.Input {
	return userdata.Input{
		Base: []byte(p.UserData), Overrides: []byte(h.UserData), Site: h.Site, HostName: h.Name,
		CallbackURL: s.cfg.Base + "/callback/" + token,
	}
}
