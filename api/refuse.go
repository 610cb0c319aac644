package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/gorilla/mux"

	"github.com/stagehand-dev/stagehand/inventory"
)

// Machine routes (/boot.ipxe, /ipxe, /artifacts, /tftp, /userdata,
// /callback) answer anyone on the provisioning network without a token,
// so a refusal says "no" and nothing else: its body is the status text,
// the same bytes for every refusal with that status. Firmware and
// installers act on the status alone; a stranger learns neither whether
// a host, profile or token exists nor a host's MAC, name or state. The
// reason goes to the debug log and, when the request is tied to a host,
// to that host's events.

// refuse answers a machine request with code and the status text. reason
// is logged at debug level (error level for a 5xx, which is the server's
// fault) and, when mac names the host the request is tied to, recorded
// as an event of kind on it: once per host, address, kind and
// refusalWindow, through the recorder, so a stranger's loop neither
// waits on the store nor floods the host's history.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, mac, kind, reason string) {
	ip := remoteIP(r)
	route := routeTemplate(r)
	ev := s.cfg.Log.Debug()
	if code >= http.StatusInternalServerError {
		ev = s.cfg.Log.Error()
	}
	ev.Str("route", route).Str("ip", ip).Str("mac", mac).Int("status", code).Str("reason", reason).Msg("machine request refused")
	if mac != "" && kind != "" && s.refused.first(mac, ip+" "+kind, s.cfg.Now()) {
		s.cfg.Events.Record(mac, kind, fmt.Sprintf("%s %s from %s refused (%d): %s", r.Method, route, ip, code, reason))
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, http.StatusText(code)+"\n")
}

// refuseStore is refuse for an error of the store, at the status
// writeStoreError would give it.
func (s *Server) refuseStore(w http.ResponseWriter, r *http.Request, mac, kind string, err error) {
	code, _ := storeStatus(err)
	s.refuse(w, r, code, mac, kind, err.Error())
}

// routeTemplate is the route a request matched, never its raw path:
// tokens in paths are secrets, and MACs make unbounded label values.
func routeTemplate(r *http.Request) string {
	if cr := mux.CurrentRoute(r); cr != nil {
		if t, err := cr.GetPathTemplate(); err == nil {
			return t
		}
	}
	return "unmatched"
}

// attributed is the MAC that attribution remembers at the request's
// address, or "". Memory only (attrib.Index.Remembered): a refusal path
// never asks the kernel or the store.
func (s *Server) attributed(r *http.Request) string {
	a, err := netip.ParseAddr(remoteIP(r))
	if err != nil {
		return ""
	}
	if hw, _, ok := s.cfg.Attrib.Remembered(a); ok {
		return hw.String()
	}
	return ""
}

// storeStatus maps inventory sentinels to an HTTP status and error code.
func storeStatus(err error) (int, string) {
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, inventory.ErrInvalid):
		return http.StatusBadRequest, "validation"
	case errors.Is(err, inventory.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, inventory.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, inventory.ErrGone):
		return http.StatusGone, "gone"
	case errors.Is(err, inventory.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	}
	return http.StatusInternalServerError, "internal"
}
