package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sync/errgroup"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/connlimit"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/neigh"
	"github.com/stagehand-dev/stagehand/ra"
	"github.com/stagehand-dev/stagehand/tftp"
)

// Server is one stagehand: built by New, run once by Run.
type Server struct {
	cfg    Config
	store  *inventory.Store
	events *events.Recorder
	feed   *events.Hub
	web    *api.Server
	who    *attrib.Index     // who is at which address: stage 2's binding, TFTP and artifact attribution
	leases attrib.LeaseTable // full mode: attribution's in-memory view of the leases
	dhcp   *dhcp.Server      // nil with DHCP off
	ra     *ra.Responder     // nil with DHCP or --ipv6-ra off
	tftp   *tftp.Server
	http   *http.Server
	conns  *connlimit.Limiter // the HTTP port's connection bounds

	// dhcpLog picks the DHCP replies worth a host event.
	dhcpLog *dhcpJournal

	closeOnce sync.Once
}

// New checks cfg, loads the iPXE binaries, opens the inventory and builds
// every server, binding nothing: a Config that cannot serve fails here,
// before the caller opens a socket. token is the operator API's bearer
// token. Call Run, or Close if Run will not be called.
func New(cfg Config, token string) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	bins, err := ipxe.LoadBinaries(cfg.IPXEDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, feed: events.NewHub()}
	s.store, err = inventory.Open(cfg.DataDir, inventory.Options{Log: cfg.Log, OnEvents: s.feed.Publish})
	if err != nil {
		return nil, err
	}
	unknown, unknownProfile := unknownPolicy(cfg.UnknownHosts)
	if unknown == ipxe.UnknownProfile {
		if _, err := s.store.Profile(unknownProfile); err != nil {
			s.store.Close()
			return nil, fmt.Errorf("--unknown-hosts %q: not ignore, discover or an existing profile", cfg.UnknownHosts)
		}
	}
	ec := cfg.Events
	ec.Sink, ec.Log = s.store, cfg.Log.With().Str("svc", "events").Logger()
	if cfg.EventSink != nil {
		ec.Sink = cfg.EventSink(s.store)
	}
	s.events = events.NewRecorder(ec)

	// Who is at which address: leases (full mode), overheard DHCP, and
	// the kernel's neighbour entries on the serving interface only.
	acfg := attrib.Config{Neighbours: neigh.Table{Device: cfg.Interface}}
	if cfg.DHCPMode == DHCPFull {
		acfg.Leases = &s.leases
	}
	s.who = attrib.New(acfg)
	s.conns = connlimit.New(cfg.HTTP.Conns)
	s.web = api.New(api.Config{
		Store: s.store, Base: fmt.Sprintf("http://%s:%d", cfg.Addr, cfg.HTTPPort), Binaries: bins,
		Unknown: unknown, UnknownProfile: unknownProfile,
		Token: token, BindUserDataToIP: cfg.UserDataIPBinding,
		Attrib: s.who, MACBinding: cfg.MACBinding, Discover: cfg.Discover,
		Log:    cfg.Log.With().Str("svc", "http").Logger(),
		Events: s.events, Feed: s.feed,
		Metrics:    s.writeMetrics,
		OnOperator: s.conns.Trust,
	})
	if cfg.DHCPMode != DHCPOff {
		if s.dhcp, err = dhcp.NewServer(s.dhcpConfig(unknown)); err != nil {
			s.store.Close()
			return nil, err
		}
		if cfg.IPv6RA != IPv6RAOff {
			s.ra = ra.New(ra.Config{Booting: s.booting, Log: cfg.Log.With().Str("svc", "ra").Logger()})
		}
	}
	s.tftp = s.tftpServer(bins)
	// One timeout for a connection waiting for a request, first or next;
	// none once a request is in progress (downloads, the event stream).
	s.http = &http.Server{
		Handler:           s.web,
		ReadHeaderTimeout: cfg.HTTP.IdleTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         s.conns.ConnState,
	}
	// Shutdown waits for handlers to return, and an event stream only
	// returns when its feed ends.
	s.http.RegisterOnShutdown(s.feed.Close)
	return s, nil
}

func (s *Server) dhcpConfig(unknown ipxe.UnknownPolicy) dhcp.Config {
	dc := s.cfg.DHCP
	dc.ServerIP = s.cfg.Addr.AsSlice()
	dc.HTTPPort = s.cfg.HTTPPort
	dc.EFIFile = s.cfg.EFIBinary
	dc.Log = s.cfg.Log.With().Str("svc", "dhcp").Logger()
	dc.Policy = AdmitPolicy(s.store, unknown)
	// proxy mode: the address a host takes from the site server (its
	// broadcast REQUEST, overheard), so its TFTP transfer is put on its
	// record and its stage 2 is bound to its MAC.
	dc.OnSiteAddress = func(mac net.HardwareAddr, a netip.Addr) { s.who.Observe(a, mac, attrib.SourceDHCP) }
	s.dhcpLog = newDHCPJournal()
	dc.OnReplies = func(rs []dhcp.Reply) {
		now := time.Now()
		for i := range rs {
			r := &rs[i]
			if r.IP.IsValid() && r.Type == dhcpv4.MessageTypeAck {
				s.who.Observe(r.IP, r.Client.MAC, attrib.SourceDHCP)
			}
			if s.dhcpLog.record(r, now) {
				s.events.Record(r.Client.MAC.String(), "dhcp", dhcpEventDetail(s.cfg.DHCPMode, *r))
			}
			if s.ra != nil { // after record: booting(mac) holds from here on
				s.ra.Booted(r.Client.MAC)
			}
		}
	}
	if dc.Mode == dhcp.ModeFull {
		dc.Leases = leaseStore{s: s.store, mirror: &s.leases}
		dc.Hosts = dhcpHosts{s.store}
	}
	return dc
}

func (s *Server) tftpServer(bins ipxe.Binaries) *tftp.Server {
	return &tftp.Server{
		Handler: tftp.HandlerFunc(func(name string, _ net.Addr) (tftp.File, int64, error) {
			f, err := bins.Open(name)
			if err != nil {
				return nil, 0, err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, err
			}
			return f, st.Size(), nil
		}),
		Log:            s.cfg.Log.With().Str("svc", "tftp").Logger(),
		MaxTransfers:   s.cfg.TFTP.MaxTransfers,
		MaxPending:     s.cfg.TFTP.MaxPending,
		PendingTimeout: s.cfg.TFTP.PendingTimeout,
		MaxPerClient:   s.cfg.TFTP.MaxPerClient,
		MaxIdle:        s.cfg.TFTP.MaxIdle,
		// The same bound as the HTTP shutdown: SIGTERM lets a host finish
		// its iPXE binary, and both drain at once.
		DrainTimeout: s.cfg.DrainTimeout,
		// On the read loop for busy refusals: a map lookup and a queue,
		// never the store. A transfer that ran has been ARP-resolved, so
		// attribution may ask the kernel; a busy refusal never waited for
		// an answer and is attributed from memory only.
		OnTransfer: func(t tftp.Transfer) {
			ap, _ := netip.ParseAddrPort(t.Remote.String())
			at := s.who.MACAt
			if errors.Is(t.Err, tftp.ErrBusy) {
				at = s.who.Remembered
			}
			hw, _, ok := at(ap.Addr().Unmap())
			if !ok {
				return
			}
			mac := hw.String()
			detail := fmt.Sprintf("%s %d bytes", t.File, t.Bytes)
			if t.Err != nil {
				detail += " failed: " + t.Err.Error()
			}
			s.events.Record(mac, "tftp", detail)
		},
	}
}

func (s *Server) writeMetrics(mw *metrics.Writer) {
	s.events.WriteMetrics(mw)
	s.feed.WriteMetrics(mw)
	s.conns.WriteMetrics(mw)
	if s.dhcpLog != nil {
		mw.Counter("stagehand_dhcp_events_suppressed_total",
			fmt.Sprintf("DHCP replies that changed something for their MAC but wrote no event: the MAC had used its budget of %d events per %v.", dhcpEventBudget, dhcpEventWindow),
			nil, float64(s.dhcpLog.suppressed.Load()))
	}
	if s.ra != nil {
		s.ra.WriteMetrics(mw)
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics(mw, s.dhcp, s.tftp)
	}
}

// Run serves on ls until ctx ends or a socket fails, then shuts down in
// order: protocols (TFTP and HTTP drain within DrainTimeout, event
// streams end), the recorder's last commit, the store. It owns ls and
// closes them on every path. It returns nil after a cancel.
func (s *Server) Run(ctx context.Context, ls Listeners) error {
	defer s.Close()
	defer ls.Close()
	if err := s.checkListeners(ls); err != nil {
		return err
	}
	s.cfg.Log.Info().Str("address", s.cfg.Addr.String()).Str("interface", s.cfg.Interface).Str("dhcp", s.cfg.DHCPMode).Str("ipv6RA", s.cfg.IPv6RA).
		Str("http", ls.HTTP.Addr().String()).Str("tftp", ls.TFTP.LocalAddr().String()).Str("data", s.cfg.DataDir).
		Str("unknown", s.cfg.UnknownHosts).Bool("userdataIPBinding", s.cfg.UserDataIPBinding).Str("macBinding", s.cfg.MACBinding.String()).Msg("stagehand serving")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.tftp.Serve(gctx, ls.TFTP) })
	for _, c := range ls.DHCP {
		g.Go(func() error { return s.dhcp.Serve(gctx, c) })
	}
	if s.ra != nil {
		g.Go(func() error { s.serveRA(gctx); return nil })
	}
	g.Go(func() error {
		if err := s.http.Serve(s.conns.Listener(ls.HTTP)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// Let in-flight downloads finish, within bounds; then cut the rest.
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
		defer cancel()
		if err := s.http.Shutdown(sctx); err != nil {
			s.http.Close()
		}
		return nil
	})
	err := g.Wait()
	s.cfg.Log.Info().Msg("stagehand stopped")
	return err
}

// checkListeners refuses listeners that do not match the Config: the
// URLs handed to hosts name Config.HTTPPort.
func (s *Server) checkListeners(ls Listeners) error {
	if ls.HTTP == nil || ls.TFTP == nil {
		return errors.New("server: Run needs an HTTP listener and a TFTP socket")
	}
	if a, ok := ls.HTTP.Addr().(*net.TCPAddr); ok && a.Port != s.cfg.HTTPPort {
		return fmt.Errorf("server: HTTP listener on port %d, but the URLs handed to hosts name port %d", a.Port, s.cfg.HTTPPort)
	}
	if want := len(DHCPPorts(s.cfg.DHCPMode)); len(ls.DHCP) != want {
		return fmt.Errorf("server: DHCP mode %s serves %d sockets, got %d", s.cfg.DHCPMode, want, len(ls.DHCP))
	}
	return nil
}

// Close commits the events still queued (within DrainTimeout), ends the
// live feed and closes the store. Run calls it; call it yourself only
// when Run will not be called. Safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
		defer cancel()
		if e := s.events.Close(ctx); e != nil {
			s.cfg.Log.Warn().Err(e).Msg("events still queued at shutdown were not committed")
		}
		s.feed.Close()
		err = s.store.Close()
	})
	return err
}

// Store is the server's inventory, for tests and tools in the process.
func (s *Server) Store() *inventory.Store { return s.store }

// Events is the server's event recorder.
func (s *Server) Events() *events.Recorder { return s.events }

// Feed is the server's live event feed.
func (s *Server) Feed() *events.Hub { return s.feed }

// bootingSpan: a host got a DHCP reply this recently is being booted,
// and its router solicitations are answered. iPXE solicits right after
// its DHCP; a chained iPXE does its own DHCP first, so a few minutes
// cover every ifconf of one boot.
const bootingSpan = 5 * time.Minute

// booting reports whether mac is a host being booted now: one this
// server answered in DHCP within bootingSpan.
func (s *Server) booting(mac net.HardwareAddr) bool {
	return s.dhcpLog.repliedWithin(mac, bootingSpan, time.Now())
}

// serveRA answers booting hosts' IPv6 router solicitations on the DHCP
// interface until ctx ends. It never ends the server: a link without
// IPv6, or a socket that fails, costs the hosts iPXE's wait and is
// logged once.
func (s *Server) serveRA(ctx context.Context) {
	log := s.cfg.Log.With().Str("svc", "ra").Str("interface", s.cfg.Interface).Logger()
	c, err := ra.Listen(s.cfg.Interface)
	if err != nil {
		log.Warn().Err(err).Msg("not answering IPv6 router solicitations: iPXE waits about 16 s for a router on each boot unless the network has one")
		return
	}
	if err := s.ra.Serve(ctx, c); err != nil {
		log.Error().Err(err).Msg("IPv6 router solicitations no longer answered")
	}
}
