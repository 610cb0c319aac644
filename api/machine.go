package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gorilla/mux"

	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/userdata"
)

const scriptType = "text/plain; charset=utf-8"

// handleStage1 serves the static stage-1 script; its event is the boot
// timeline's stage-1 milestone. Anyone may ask for it, as often as they
// like: it is attributed from what attribution remembers (the DHCP
// exchange that just preceded it), never by reading the kernel's table.
func (s *Server) handleStage1(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", scriptType)
	w.Write(s.stage1)
	if r.Method == http.MethodGet {
		s.recordServed(r, s.cfg.Attrib.Remembered, "script", inventory.Stage1Detail+" to "+remoteIP(r))
	}
}

// recordServed records an event of kind on the host that who finds at
// the request's address: a step of a boot that names no MAC.
func (s *Server) recordServed(r *http.Request, who func(netip.Addr) (net.HardwareAddr, attrib.Source, bool), kind, detail string) {
	if a, err := netip.ParseAddr(remoteIP(r)); err == nil {
		if mac, _, ok := who(a); ok {
			s.cfg.Events.Record(mac.String(), kind, detail)
		}
	}
}

func (s *Server) writeScript(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", scriptType)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// handleStage2 answers "what should this host do now?". The decision is
// ipxe.Decide; this handler only gathers its input, checks that the
// client may speak for the MAC it names (bindMAC), and applies it.
func (s *Server) handleStage2(w http.ResponseWriter, r *http.Request) {
	q, err := ipxe.ParseQuery(r.URL.Query())
	if err != nil {
		s.cfg.Log.Debug().Str("remote", r.RemoteAddr).Err(err).Msg("bad stage-2 query")
		writeError(w, http.StatusBadRequest, "validation", err.Error())
		return
	}
	mac, err := inventory.NormalizeMAC(q.MAC)
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation", err.Error())
		return
	}
	nic := mac // the NIC that asked, which the evidence names
	// A machine booting from one of its other NICs is that host: every
	// record below is keyed by the host's own MAC.
	if key, err := s.cfg.Store.Resolve(mac); err == nil {
		mac = key
	}
	ip := remoteIP(r)
	facts := inventory.Facts{UUID: q.UUID, Serial: q.Serial, Manufacturer: q.Manufacturer, Product: q.Product, BuildArch: q.BuildArch, Platform: q.Platform}
	st := s.cfg.Store
	h, err := st.Host(mac)
	known := err == nil
	if err != nil && !errors.Is(err, inventory.ErrNotFound) {
		s.refuseStore(w, r, "", "", err)
		return
	}
	action := ipxe.Decide(ipxe.Input{Known: known, State: bootState(h.State), Unknown: s.cfg.Unknown})
	log := s.cfg.Log.With().Str("mac", mac).Str("ip", ip).Str("action", action.String()).Logger()
	// Every answer but ActionUnknown writes (facts, LastIP, a discovered
	// record, an attempt and its token): the binding is decided before
	// the first write. It is decided for an unknown MAC too, so that a
	// stranger naming MACs gets the same 403 for those in the inventory
	// and those not: the answer tells nothing about which are.
	if !s.bindMAC(w, r, &log, nic, mac, ip, known) {
		return
	}
	if action == ipxe.ActionUnknown {
		log.Info().Msg("stage 2 for a host not in the inventory")
		s.writeScript(w, ipxe.RenderMessage(mac+" is not in the inventory; nothing to boot"))
		return
	}

	switch action {
	case ipxe.ActionDiscover:
		s.discover(w, r, &log, mac, ip, facts)
		return
	case ipxe.ActionWait:
		if _, err = st.Seen(mac, ip, facts); err != nil {
			s.refuseStore(w, r, mac, "stage2-refused", err)
			return
		}
		s.writeScript(w, ipxe.RenderWait(nic, "no profile assigned yet", s.cfg.Base+"/boot.ipxe", 60))
		return
	case ipxe.ActionLocal:
		// The install is over: what the request reports changes nothing
		// (inventory.Store.Seen), and its one event is informational.
		method := ipxe.LocalMethod(inventory.LocalBootExit)
		if p, err := st.Profile(h.Profile); err == nil {
			method = ipxe.LocalMethod(p.Local)
		}
		s.cfg.Events.Record(mac, "localboot", "stage 2 requested, "+facts.Describe(ip)+": booting local disk ("+string(method)+"), host is "+h.State.String())
		log.Info().Str("state", h.State.String()).Msg("local boot")
		s.writeScript(w, ipxe.RenderLocal(method))
		return
	}

	// ActionInstall.
	if !known {
		if _, err := st.CreateHost(inventory.Host{MAC: mac, Profile: s.cfg.UnknownProfile}); err != nil && !errors.Is(err, inventory.ErrExists) {
			s.refuseStore(w, r, "", "", fmt.Errorf("enrolling unknown host %s with the default profile: %w", mac, err))
			return
		}
	}
	h, token, err := st.BeginInstallSeen(mac, ip, facts)
	if err != nil {
		s.refuseStore(w, r, mac, "stage2-refused", err)
		return
	}
	p, err := st.Profile(h.Profile)
	if err != nil {
		s.refuseStore(w, r, mac, "stage2-refused", fmt.Errorf("the host's profile %s is gone: %w", h.Profile, err))
		return
	}
	art := s.cfg.Base + "/artifacts/" + p.Name + "/"
	vars := ipxe.CmdlineVars{ConfigURL: s.cfg.Base + "/userdata/" + token, Server: s.cfg.Base}
	if p.RootFS != "" {
		vars.RootFSURL = art + "rootfs"
	}
	log.Info().Str("profile", p.Name).Int("attempt", h.Attempt).Msg("serving install script")
	s.writeScript(w, ipxe.RenderInstall(ipxe.InstallParams{
		Host: h.Ident(), Attempt: h.Attempt,
		KernelURL: art + "kernel", InitrdURL: art + "initrd",
		Cmdline: ipxe.ExpandCmdline(p.Cmdline, vars),
	}))
}

// handleArtifact serves a profile's kernel, initrd or live root image.
// http.ServeContent gives Content-Length, Range and If-Modified-Since,
// and copies with io.CopyN: an *io.LimitedReader over the artifact,
// which net's sendfile path accepts when the reader is a syscall.Conn.
// Plain files (*os.File) and sections of an installer image
// (*inventory.Section) both are, so their bytes never pass through this
// process; the metrics middleware keeps io.ReaderFrom for the same reason.
func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	name := v["profile"] + "/" + v["file"]
	// A missing profile and a missing file of a profile get the same
	// answer: a stranger cannot tell which profiles exist.
	p, err := s.cfg.Store.Profile(v["profile"])
	if err != nil {
		s.refuseStore(w, r, s.attributed(r), "artifact-refused", fmt.Errorf("artifact %s: %w", name, err))
		return
	}
	a, err := p.OpenArtifact(v["file"])
	if err != nil {
		if !errors.Is(err, inventory.ErrNotFound) {
			// An artifact the profile names but the server cannot read:
			// the operator's to fix.
			s.cfg.Log.Error().Err(err).Str("profile", p.Name).Str("file", v["file"]).Msg("artifact unavailable")
		}
		s.refuse(w, r, http.StatusNotFound, s.attributed(r), "artifact-refused", fmt.Sprintf("artifact %s: %v", name, err))
		return
	}
	defer a.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", a.ModTime, artifactContent(a))
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
		return
	}
	s.recordServed(r, s.cfg.Attrib.MACAt, "artifact", name)
}

// artifactContent is what handleArtifact hands to http.ServeContent: the
// *os.File or *inventory.Section itself, never the ArtifactReader, whose
// embedded interface hides SyscallConn and so would lose sendfile.
func artifactContent(a *inventory.ArtifactReader) io.ReadSeeker { return a.ReadSeeker }

// handleBinary serves the iPXE binaries over HTTP for UEFI HTTP boot.
// Only names in the list loaded at start: no client path reaches the
// file system.
func (s *Server) handleBinary(w http.ResponseWriter, r *http.Request) {
	f, err := s.cfg.Binaries.Open(mux.Vars(r)["file"])
	if err != nil {
		s.refuse(w, r, http.StatusNotFound, "", "", "no such iPXE binary: "+err.Error())
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		s.refuse(w, r, http.StatusNotFound, "", "", fmt.Sprintf("iPXE binary %s is not a readable file", f.Name()))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), f)
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		s.recordServed(r, s.cfg.Attrib.MACAt, inventory.BootFileKind, fmt.Sprintf("%s %d bytes over HTTP", st.Name(), st.Size()))
	}
}

// handleUserData renders this attempt's installer configuration. The
// token is the credential: unknown tokens get 404, tokens of attempts
// that are over get 410, and neither changes anything. With
// BindUserDataToIP, a live token from another address than the one that
// fetched the install script gets 403 and an event on the host.
func (s *Server) handleUserData(w http.ResponseWriter, r *http.Request) {
	token := mux.Vars(r)["token"]
	ip := remoteIP(r)
	bind := inventory.AnyIP
	if s.cfg.BindUserDataToIP {
		bind = inventory.BindToScriptIP
	}
	var doc []byte
	h, _, err := s.cfg.Store.FetchUserData(token, ip, bind, func(h inventory.Host, p inventory.Profile) error {
		var err error
		doc, err = userdata.Render(s.userdataInput(h, p, token))
		if err != nil {
			return fmt.Errorf("%w: host %s: %v", inventory.ErrInvalid, h.Ident(), err)
		}
		return nil
	})
	// Never log the token: it is the attempt's secret.
	switch {
	case errors.Is(err, inventory.ErrForbidden):
		// The store has recorded the refusal on the host.
		s.refuse(w, r, http.StatusForbidden, h.MAC, "", err.Error())
		return
	case errors.Is(err, inventory.ErrInvalid):
		// Only the attempt's token gets here: the host's own installer.
		s.cfg.Log.Info().Str("ip", ip).Err(err).Msg("user-data refused")
		writeError(w, http.StatusUnprocessableEntity, "validation", err.Error())
		return
	case err != nil:
		// h is the token's host when it is known (an attempt that is over).
		s.refuseStore(w, r, h.MAC, "userdata-refused", err)
		return
	}
	s.cfg.Log.Info().Str("mac", h.MAC).Str("ip", ip).Int("attempt", h.Attempt).Msg("user-data served")
	w.Header().Set("Content-Type", "text/cloud-config; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(doc)
}

// maxCallbackBody bounds the failure message an installer may send.
const maxCallbackBody = 4 << 10

// handleCallback records the installer's verdict. Unlike user-data it is
// not bound to an address: the installer reports from its after-install
// stage, when the network may have been reconfigured to the site's
// static address (stylus.site.network). The token is the credential;
// a report for a superseded attempt is 410, a repeated done 200 with
// changed=false.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	token := v["token"]
	var (
		h       inventory.Host
		changed bool
		err     error
	)
	if v["result"] == "done" {
		h, changed, err = s.cfg.Store.Complete(token)
	} else {
		body := make([]byte, maxCallbackBody)
		n, _ := io.ReadFull(http.MaxBytesReader(w, r.Body, maxCallbackBody), body)
		h, changed, err = s.cfg.Store.Fail(token, strings.TrimSpace(string(body[:n])))
	}
	if err != nil {
		// h is the token's host when it is known (an attempt that is over).
		s.refuseStore(w, r, h.MAC, "callback-refused", fmt.Errorf("%s callback: %w", v["result"], err))
		return
	}
	if changed {
		s.observeInstall(h)
		s.observePhases(h.MAC)
		s.cfg.Log.Info().Str("mac", h.MAC).Str("state", h.State.String()).Int("attempt", h.Attempt).Msg("installer reported")
	}
	writeJSON(w, http.StatusOK, map[string]any{"mac": h.MAC, "state": h.State, "changed": changed})
}
