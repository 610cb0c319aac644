package api

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
)

// Config wires a Server. Zero values are documented defaults.
type Config struct {
	Store *inventory.Store
	// Base is the URL machines reach this server at, e.g.
	// "http://10.0.0.1:8080" (no trailing slash). It goes into every
	// script and config_url, so it must be the provisioning-network
	// address, not whatever Host header a client sent.
	Base string
	// Binaries are the iPXE binaries, served under /tftp/ for UEFI HTTP
	// boot clients (which fetch the NBP over HTTP instead of TFTP).
	Binaries ipxe.Binaries
	// Unknown is the policy for MACs not in the inventory;
	// UnknownProfile is the profile used when it is ipxe.UnknownProfile.
	Unknown        ipxe.UnknownPolicy
	UnknownProfile string
	// Token is the operator bearer token. Empty disables the operator
	// API (every call gets 401), never opens it.
	Token string
	// BindUserDataToIP serves an attempt's user-data only to the address
	// that fetched its install script (403 to any other). Safe whenever
	// the installer's kernel gets the address iPXE had, as it does from a
	// DHCP server keyed on the MAC; off (the zero value) when it may not,
	// e.g. behind NAT. `stagehand serve` turns it on by default.
	BindUserDataToIP bool
	Log              zerolog.Logger
	Now              func() time.Time
	// Metrics, if set, adds the other servers' counters (DHCP, TFTP) to
	// each /metrics scrape.
	Metrics func(*metrics.Writer)
	// TokenLimit bounds failed install-token lookups per client address.
	TokenLimit LimitPolicy
	// Events takes the informational events of machine requests
	// (artifact downloads, local boots, seeds issued) without making the
	// request wait for a commit. nil: New builds an events.Recorder
	// committing to Store. State changes (an attempt starting, user-data
	// served, the callback) are recorded by the store in their own
	// transactions, not here.
	Events EventRecorder
	// Feed is the live event feed behind GET /api/v1/events?follow=1;
	// nil answers follow requests with 503.
	Feed *events.Hub
	// Heartbeat is how often an idle event stream gets a bare newline,
	// so proxies and clients can tell a quiet stream from a dead one.
	// 0 means 15 s.
	Heartbeat time.Duration
	// Attrib ties client addresses to MACs: for stage 2's MAC binding and
	// to put artifact downloads on the right host. nil: an index of the
	// server's own with no lease and no kernel evidence, which knows only
	// what Observe tells it.
	Attrib *attrib.Index
	// MACBinding is whether stage 2 needs evidence that the MAC named in
	// the request is at the requesting address (zero value: strict).
	MACBinding MACBinding
	// OnOperator, if set, is told the client address of every request
	// that presented the operator token (the server gives that address
	// room beside the machines' connection limits). It must return at
	// once.
	OnOperator func(netip.Addr)
	// Discover bounds the records Unknown == ipxe.UnknownDiscover makes.
	Discover DiscoverLimit
}

// EventRecorder takes events for the store without blocking; an
// *events.Recorder is one. Record must return at once.
type EventRecorder interface {
	Record(mac, kind, detail string)
}

// MACBinding is the stage-2 policy for a MAC named by a client.
type MACBinding uint8

const (
	// MACBindingStrict serves stage 2 for a MAC only to an address that
	// Config.Attrib vouches for (a lease, an overheard DHCP exchange, the
	// kernel's neighbour entry): a stranger who names a known MAC gets
	// 403, and nothing is written but an event on the host.
	MACBindingStrict MACBinding = iota
	// MACBindingOff trusts the MAC a client names, for networks where the
	// evidence cannot exist (hosts behind NAT or an HTTP proxy; stage 2
	// fetched from another network than DHCP ran on).
	MACBindingOff
)

func (b MACBinding) String() string {
	if b == MACBindingOff {
		return "off"
	}
	return "strict"
}

// ParseMACBinding reads "strict" or "off".
func ParseMACBinding(s string) (MACBinding, error) {
	switch s {
	case "strict":
		return MACBindingStrict, nil
	case "off":
		return MACBindingOff, nil
	}
	return 0, fmt.Errorf("MAC binding %q: want strict or off", s)
}

// Server serves HTTP. Build it with New; it is an http.Handler.
type Server struct {
	cfg    Config
	router *mux.Router
	stage1 []byte

	requests metrics.RequestCounter
	installs installHistogram
	phases   phaseHistograms
	limiter  *tokenLimiter

	refused   refusalLog // stage-2 refusals recorded lately
	discovery *discovery
}

// New builds the router.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = events.NewRecorder(events.Config{Sink: cfg.Store, Log: cfg.Log})
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = defaultHeartbeat
	}
	if cfg.Attrib == nil {
		cfg.Attrib = attrib.New(attrib.Config{Now: cfg.Now})
	}
	s := &Server{cfg: cfg, limiter: newTokenLimiter(cfg.TokenLimit, cfg.Now), discovery: newDiscovery(cfg.Discover, cfg.Now)}
	s.stage1 = ipxe.RenderStage1(ipxe.Stage1Params{Base: cfg.Base})
	r := mux.NewRouter()
	r.Use(s.countRequests)
	r.Handle("/metrics", s.auth(http.HandlerFunc(s.handleMetrics))).Methods(http.MethodGet)
	r.HandleFunc("/boot.ipxe", s.handleStage1).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/ipxe", s.handleStage2).Methods(http.MethodGet)
	r.HandleFunc("/artifacts/{profile}/{file}", s.handleArtifact).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/tftp/{file}", s.handleBinary).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/userdata/{token}", s.limitTokens(s.handleUserData)).Methods(http.MethodGet)
	r.HandleFunc("/callback/{token}/{result:done|failed}", s.limitTokens(s.handleCallback)).Methods(http.MethodPost)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }).Methods(http.MethodGet)

	s.operatorRoutes(r)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	s.router = r
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// methodNotAllowed answers 405 with the Allow header RFC 9110 §15.5.6
// requires: the methods of the routes that match the path. It asks the
// router rather than keeping a second list, so a route added later is
// in Allow by itself. Routes without a method matcher (the catch-alls
// that keep /hosts/import from reading as a MAC) allow nothing.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range allMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if !s.router.Match(probe, &match) || match.MatchErr != nil || match.Route == nil {
			continue
		}
		if ms, err := match.Route.GetMethods(); err == nil && slices.Contains(ms, m) {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" not allowed on "+r.URL.Path)
}

// allMethods are the methods a 405's Allow may list, in RFC 9110 order.
var allMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch}

// auth checks the bearer token in constant time. A token in the query
// string is refused outright: URLs end up in proxy and shell histories.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("token") || q.Has("access_token") {
			writeError(w, http.StatusUnauthorized, "unauthorized", "tokens are accepted only in the Authorization header, never in the URL")
			return
		}
		h := r.Header.Get("Authorization")
		got, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || s.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="stagehand"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			return
		}
		if a, err := netip.ParseAddr(remoteIP(r)); err == nil && s.cfg.OnOperator != nil {
			s.cfg.OnOperator(a)
		}
		next.ServeHTTP(w, r)
	})
}

// ErrorBody is the JSON shape of every API error.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		// Rows lists every bad row of a rejected manifest.
		Rows []inventory.RowError `json:"rows,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeStoreError answers an operator request with a store error: its
// status (storeStatus) and message. Machine routes use refuseStore.
func writeStoreError(w http.ResponseWriter, err error) {
	code, label := storeStatus(err)
	writeError(w, code, label, err.Error())
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
