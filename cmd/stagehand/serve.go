package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/attrib"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/neigh"
	"github.com/stagehand-dev/stagehand/tftp"
)

type serveOpts struct {
	listen, iface, dataDir          string
	dhcpMode, dhcpRange, dhcpRouter string
	dhcpDNS                         string
	leaseTime                       time.Duration
	unknownShare                    int
	httpPort, tftpPort              int
	tftpMaxTransfers, tftpPerClient int
	tftpMaxIdle                     time.Duration
	ipxeDir, efiBinary              string
	unknown                         string
	logLevel, logFormat             string
	userDataIPBinding               bool
	macBinding                      string
}

func serveFlags(fs *flag.FlagSet) *serveOpts {
	o := &serveOpts{}
	fs.StringVar(&o.listen, "listen-address", "", "IPv4 address to serve on; default: the first IPv4 address of --interface")
	fs.StringVar(&o.iface, "interface", "", "network interface facing the hosts; default: the one holding --listen-address")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/stagehand", "directory for the inventory database and the API token")
	fs.StringVar(&o.dhcpMode, "dhcp-mode", "proxy", "proxy (beside an existing DHCP server), full (isolated network) or off")
	fs.StringVar(&o.dhcpRange, "dhcp-range", "", "full mode: address pool START-END, e.g. 10.0.0.100-10.0.0.199")
	fs.StringVar(&o.dhcpRouter, "dhcp-router", "", "full mode: default gateway to hand out (option 3)")
	fs.StringVar(&o.dhcpDNS, "dhcp-dns", "", "full mode: comma-separated DNS servers to hand out (option 6)")
	fs.DurationVar(&o.leaseTime, "dhcp-lease-time", time.Hour, "full mode: lease time")
	fs.IntVar(&o.unknownShare, "dhcp-unknown-share", dhcp.DefaultUnknownShare, "full mode: percent of --dhcp-range that MACs not in the inventory may hold at once (1-100), so a flood of strangers cannot starve known hosts; reserved addresses (host --dhcp-address) are never given to others")
	fs.IntVar(&o.httpPort, "http-port", 8080, "HTTP port for scripts, artifacts, user-data, callbacks and the API")
	fs.IntVar(&o.tftpPort, "tftp-port", 69, "TFTP port for the iPXE binaries")
	fs.IntVar(&o.tftpMaxTransfers, "tftp-max-transfers", tftp.DefaultMaxTransfers, "TFTP: concurrent transfers at most; more are refused with an ERROR the firmware retries")
	fs.IntVar(&o.tftpPerClient, "tftp-max-per-client", defaultTFTPPerClient, "TFTP: concurrent transfers from one IP address at most (0: no cap), so one client that never ACKs cannot hold every slot")
	fs.DurationVar(&o.tftpMaxIdle, "tftp-max-idle", tftp.DefaultMaxIdle, "TFTP: how long a transfer may go without a new ACK before it is dropped (resends back off 1,1,1,2,4,8 s meanwhile)")
	fs.StringVar(&o.ipxeDir, "ipxe-dir", ipxe.DefaultDir, "directory with undionly.kpxe and the EFI binary (Debian package ipxe)")
	fs.StringVar(&o.efiBinary, "efi-binary", ipxe.FileEFISNPOnly, "iPXE binary for UEFI x64 clients: snponly.efi or ipxe.efi")
	fs.StringVar(&o.unknown, "unknown-hosts", "ignore", "what to do with MACs not in the inventory: ignore, discover, or the name of a profile to install")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "console", "console or json")
	fs.StringVar(&o.macBinding, "mac-binding", "strict", "stage 2: strict serves a host's install script only to an address that a lease, an overheard DHCP exchange or the kernel's neighbour entry on --interface ties to the MAC it names (403 otherwise); off trusts the MAC any client names, for hosts behind NAT or an HTTP proxy, or when stage 2 comes from another network than DHCP")
	fs.BoolVar(&o.userDataIPBinding, "userdata-ip-binding", true, "serve each install attempt's user-data only to the address that fetched its install script; turn off if the installer may come back from another address (NAT, a different DHCP pool)")
	return o
}

func newLogger(level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano // boot steps are milliseconds apart
	var l zerolog.Logger
	switch format {
	case "json":
		l = zerolog.New(os.Stderr)
	case "console":
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want console or json", format)
	}
	return l.Level(lvl).With().Timestamp().Logger(), nil
}

// resolveAddr picks the serving address and interface from what was given.
func resolveAddr(listen, iface string) (netip.Addr, string, error) {
	if listen != "" {
		a, err := netip.ParseAddr(listen)
		if err != nil || !a.Is4() {
			return netip.Addr{}, "", fmt.Errorf("--listen-address %q is not an IPv4 address", listen)
		}
		if iface != "" {
			return a, iface, nil
		}
		ifs, err := net.Interfaces()
		if err != nil {
			return netip.Addr{}, "", err
		}
		for _, ifc := range ifs {
			addrs, _ := ifc.Addrs()
			for _, ad := range addrs {
				if n, ok := ad.(*net.IPNet); ok && n.IP.Equal(a.AsSlice()) {
					return a, ifc.Name, nil
				}
			}
		}
		return netip.Addr{}, "", fmt.Errorf("--listen-address %s is not assigned to any interface here", listen)
	}
	if iface == "" {
		return netip.Addr{}, "", errors.New("give --listen-address or --interface (the network facing the hosts)")
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("--interface %s: %w", iface, err)
	}
	addrs, _ := ifc.Addrs()
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && n.IP.To4() != nil {
			a, _ := netip.AddrFromSlice(n.IP.To4())
			return a, iface, nil
		}
	}
	return netip.Addr{}, "", fmt.Errorf("--interface %s has no IPv4 address", iface)
}

// ifaceMask returns the prefix of addr on iface, for full mode's option 1.
func ifaceMask(iface string, addr netip.Addr) (net.IPMask, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	addrs, _ := ifc.Addrs()
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && n.IP.Equal(addr.AsSlice()) {
			return n.Mask, nil
		}
	}
	return nil, fmt.Errorf("%s is not on %s", addr, iface)
}

func parseRange(s string) (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(s, "-")
	start, err1 := netip.ParseAddr(strings.TrimSpace(a))
	end, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || !start.Is4() || !end.Is4() || end.Less(start) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("--dhcp-range %q: want START-END, two IPv4 addresses in order", s)
	}
	return start, end, nil
}

func parseIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		ip := net.ParseIP(f).To4()
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", f)
		}
		out = append(out, ip)
	}
	return out, nil
}

// portError names the port when a bind fails for the usual reasons.
func portError(proto string, port int, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s port %d on %s is already in use (another DHCP/TFTP/HTTP server? pick another port or stop it)", proto, port, addr)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%s port %d on %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)", proto, port, addr)
	}
	return fmt.Errorf("%s port %d on %s: %w", proto, port, addr, err)
}

// loadToken reads the operator token from the data dir, creating it
// (mode 0600) on first start.
func loadToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, tokenFile)
	if b, err := os.ReadFile(path); err == nil {
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("%s is empty; delete it to have a new token generated", path)
		}
		return t, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	t := randomToken()
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing API token: %w", err)
	}
	return t, nil
}

// defaultTFTPPerClient leaves room for a PXE ROM's aborted tsize probe
// and a retry from a new port beside its real transfer, while keeping a
// single address to a sliver of the 512 slots.
const defaultTFTPPerClient = 8

// checkTFTP refuses TFTP bounds that would stop the server from serving.
func (o *serveOpts) checkTFTP() error {
	if o.tftpMaxTransfers < 1 {
		return fmt.Errorf("--tftp-max-transfers %d: want at least 1", o.tftpMaxTransfers)
	}
	if o.tftpPerClient < 0 {
		return fmt.Errorf("--tftp-max-per-client %d: want 0 (no cap) or more", o.tftpPerClient)
	}
	// Below the first resend intervals, a transfer behind one lost
	// packet would be dropped before it could recover.
	if o.tftpMaxIdle < 5*time.Second {
		return fmt.Errorf("--tftp-max-idle %s: want at least 5s", o.tftpMaxIdle)
	}
	return nil
}

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o := serveFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	addr, iface, err := resolveAddr(o.listen, o.iface)
	if err != nil {
		return err
	}
	mode := strings.ToLower(o.dhcpMode)
	if mode != "off" && mode != "proxy" && mode != "full" {
		return fmt.Errorf("--dhcp-mode %q: want proxy, full or off", o.dhcpMode)
	}
	if o.efiBinary != ipxe.FileEFISNPOnly && o.efiBinary != ipxe.FileEFIFull {
		return fmt.Errorf("--efi-binary %q: want %s or %s", o.efiBinary, ipxe.FileEFISNPOnly, ipxe.FileEFIFull)
	}
	if err := o.checkTFTP(); err != nil {
		return err
	}
	macBinding, err := api.ParseMACBinding(o.macBinding)
	if err != nil {
		return fmt.Errorf("--mac-binding %q: want strict or off", o.macBinding)
	}
	// Who is at which address: leases (full mode), overheard DHCP, and
	// the kernel's neighbour entries on the serving interface only.
	var leases attrib.LeaseTable
	acfg := attrib.Config{Neighbours: neigh.Table{Device: iface}}
	if mode == "full" {
		acfg.Leases = &leases
	}
	who := attrib.New(acfg)
	if err := ipxe.CheckBinaries(o.ipxeDir, ipxe.FileBIOS, o.efiBinary); err != nil {
		return err
	}
	bins, err := ipxe.LoadBinaries(o.ipxeDir)
	if err != nil {
		return err
	}
	store, err := inventory.Open(o.dataDir, inventory.Options{Log: log})
	if err != nil {
		return err
	}
	defer store.Close()

	unknown, unknownProfile := ipxe.UnknownIgnore, ""
	switch o.unknown {
	case "ignore":
	case "discover":
		unknown = ipxe.UnknownDiscover
	default:
		if _, err := store.Profile(o.unknown); err != nil {
			return fmt.Errorf("--unknown-hosts %q: not ignore, discover or an existing profile", o.unknown)
		}
		unknown, unknownProfile = ipxe.UnknownProfile, o.unknown
	}
	token, err := loadToken(o.dataDir)
	if err != nil {
		return err
	}

	base := fmt.Sprintf("http://%s:%d", addr, o.httpPort)
	var (
		dhcpSrv *dhcp.Server
		tftpSrv *tftp.Server
	)
	web := api.New(api.Config{
		Store: store, Base: base, Binaries: bins,
		Unknown: unknown, UnknownProfile: unknownProfile,
		Token: token, BindUserDataToIP: o.userDataIPBinding,
		Attrib: who, MACBinding: macBinding,
		Log: log.With().Str("svc", "http").Logger(),
		// The servers below exist by the time anyone can scrape.
		Metrics: func(mw *metrics.Writer) { writeServerMetrics(mw, mode, dhcpSrv, tftpSrv) },
	})

	// Bind everything before serving anything, so a port clash is one
	// clear line and nothing half-starts.
	httpAddr := net.JoinHostPort(addr.String(), fmt.Sprint(o.httpPort))
	httpLn, err := net.Listen("tcp4", httpAddr)
	if err != nil {
		return portError("HTTP", o.httpPort, addr.String(), err)
	}
	tftpConn, err := net.ListenPacket("udp4", net.JoinHostPort(addr.String(), fmt.Sprint(o.tftpPort)))
	if err != nil {
		httpLn.Close()
		return portError("TFTP", o.tftpPort, addr.String(), err)
	}
	var dhcpConns []net.PacketConn
	if mode != "off" {
		dcfg := dhcp.Config{
			ServerIP: addr.AsSlice(), HTTPPort: o.httpPort, EFIFile: o.efiBinary,
			Log:    log.With().Str("svc", "dhcp").Logger(),
			Policy: admitPolicy(store, unknown),
			// One read and at most one commit per burst of replies: a
			// rack powering on sends thousands a second, mostly from MACs
			// the inventory does not hold (AddEvents skips those).
			// proxy mode: the address a host takes from the site server,
			// so its TFTP transfer is put on its record and its stage 2
			// is bound to its MAC (attrib's overheard-exchange evidence).
			OnSiteAddress: func(mac net.HardwareAddr, a netip.Addr) { who.Observe(a, mac, attrib.SourceDHCP) },
			OnReplies: func(rs []dhcp.Reply) {
				evs := make([]inventory.HostEvent, 0, len(rs))
				for _, r := range rs {
					mac := r.Client.MAC.String()
					if r.IP.IsValid() && r.Type == dhcpv4.MessageTypeAck {
						who.Observe(r.IP, r.Client.MAC, attrib.SourceDHCP)
					}
					evs = append(evs, inventory.HostEvent{MAC: mac, Kind: "dhcp", Detail: dhcpEventDetail(mode, r)})
				}
				if _, err := store.AddEvents(evs); err != nil {
					log.Error().Err(err).Int("events", len(evs)).Msg("dhcp: recording events failed")
				}
			},
		}
		if mode == "full" {
			dcfg.Mode = dhcp.ModeFull
			if dcfg.RangeStart, dcfg.RangeEnd, err = parseRange(o.dhcpRange); err != nil {
				return err
			}
			if dcfg.Netmask, err = ifaceMask(iface, addr); err != nil {
				return err
			}
			if o.dhcpRouter != "" {
				if dcfg.Router = net.ParseIP(o.dhcpRouter).To4(); dcfg.Router == nil {
					return fmt.Errorf("--dhcp-router %q is not an IPv4 address", o.dhcpRouter)
				}
			}
			if dcfg.DNS, err = parseIPs(o.dhcpDNS); err != nil {
				return fmt.Errorf("--dhcp-dns: %w", err)
			}
			dcfg.LeaseTime = o.leaseTime
			dcfg.Leases = leaseStore{s: store, mirror: &leases}
			dcfg.Hosts = dhcpHosts{store}
			if o.unknownShare < 1 || o.unknownShare > 100 {
				return fmt.Errorf("--dhcp-unknown-share %d: want a percentage 1-100", o.unknownShare)
			}
			dcfg.UnknownShare = o.unknownShare
		} else {
			dcfg.Mode = dhcp.ModeProxy
		}
		if dhcpSrv, err = dhcp.NewServer(dcfg); err != nil {
			return err
		}
		ports := []int{67}
		if mode == "proxy" {
			ports = append(ports, 4011) // PXE boot server discovery: OVMF's REQUEST after a proxy offer
		}
		for _, p := range ports {
			c, err := dhcp.ListenUDP(iface, p)
			if err != nil {
				for _, c := range dhcpConns {
					c.Close()
				}
				return portError("DHCP", p, iface, err)
			}
			if got := dhcp.ReceiveBuffer(c); got > 0 && got < dhcp.ReceiveBufferWanted {
				log.Warn().Int("port", p).Int("bytes", got).Int("wanted", dhcp.ReceiveBufferWanted).
					Msg("DHCP receive buffer is small, so a rack powering on at once may overflow it: give the server CAP_NET_ADMIN, or raise net.core.rmem_max to 4194304")
			}
			dhcpConns = append(dhcpConns, c)
		}
	}

	tftpSrv = &tftp.Server{
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
		Log:          log.With().Str("svc", "tftp").Logger(),
		MaxTransfers: o.tftpMaxTransfers,
		MaxPerClient: o.tftpPerClient,
		MaxIdle:      o.tftpMaxIdle,
		// The same bound as the HTTP shutdown below: SIGTERM lets a host
		// finish its iPXE binary, and both drain at once.
		DrainTimeout: 10 * time.Second,
		OnTransfer: func(t tftp.Transfer) {
			ap, _ := netip.ParseAddrPort(t.Remote.String())
			// A transfer that ran has been ARP-resolved, so MACAt may ask
			// the kernel; a busy refusal never waited for an answer and
			// is attributed from memory only.
			at := who.MACAt
			if errors.Is(t.Err, tftp.ErrBusy) {
				at = who.Remembered
			}
			if hw, _, ok := at(ap.Addr()); ok {
				mac := hw.String()
				detail := fmt.Sprintf("%s %d bytes", t.File, t.Bytes)
				if t.Err != nil {
					detail += " failed: " + t.Err.Error()
				}
				store.AddEvent(mac, "tftp", detail)
			}
		},
	}
	httpSrv := &http.Server{
		Handler:           web,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}

	log.Info().Str("address", addr.String()).Str("interface", iface).Str("dhcp", mode).
		Int("http", o.httpPort).Int("tftp", o.tftpPort).Str("data", o.dataDir).Str("unknown", o.unknown).
		Bool("userdataIPBinding", o.userDataIPBinding).Str("macBinding", macBinding.String()).Msg("stagehand serving")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tftpSrv.Serve(gctx, tftpConn) })
	for _, c := range dhcpConns {
		g.Go(func() error { return dhcpSrv.Serve(gctx, c) })
	}
	g.Go(func() error {
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// Let in-flight downloads finish, within bounds.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return httpSrv.Shutdown(sctx)
	})
	err = g.Wait()
	log.Info().Msg("stagehand stopped")
	return err
}

// admitPolicy is the DHCP gate: with --unknown-hosts ignore, only MACs in
// the inventory get any answer, so stagehand is silent on a shared
// network for every machine it does not own.
func admitPolicy(store *inventory.Store, unknown ipxe.UnknownPolicy) dhcp.Policy {
	if unknown != ipxe.UnknownIgnore {
		return nil
	}
	return dhcp.PolicyFunc(func(c *dhcp.Client) bool {
		_, err := store.Resolve(c.MAC.String()) // a host's own MAC or one of its other NICs
		return err == nil
	})
}

// dhcpHosts adapts the inventory to dhcp.Hosts: each call is one bbolt
// read, so reservations made through the API apply from the next packet.
type dhcpHosts struct{ s *inventory.Store }

func (d dhcpHosts) Lookup(mac net.HardwareAddr) (netip.Addr, bool) {
	h, err := d.s.Host(mac.String())
	if err != nil {
		// One of a host's other NICs is known, but the reservation is the
		// host's own MAC's (ReservedFor names that MAC), so it takes a
		// pool address. Asked only when the MAC is no host's: the common
		// packet costs one read, as before other NICs existed.
		_, err := d.s.Resolve(mac.String())
		return netip.Addr{}, err == nil
	}
	a, _ := netip.ParseAddr(h.DHCPAddress) // validated when stored; "" is invalid
	return a, true
}

func (d dhcpHosts) ReservedFor(a netip.Addr) net.HardwareAddr {
	mac, err := d.s.ReservedFor(a.String())
	if err != nil {
		return nil
	}
	hw, _ := net.ParseMAC(mac)
	return hw
}

// leaseStore adapts the inventory to dhcp.LeaseStore, and keeps mirror
// (attribution's view of the leases) in step with every lease the DHCP
// server loads, stores durably or forgets.
type leaseStore struct {
	s      *inventory.Store
	mirror *attrib.LeaseTable
}

func (l leaseStore) Leases() ([]dhcp.Lease, error) {
	ls, err := l.s.Leases()
	if err != nil {
		return nil, err
	}
	out := make([]dhcp.Lease, 0, len(ls))
	for _, x := range ls {
		mac, err1 := net.ParseMAC(x.MAC)
		ip, err2 := netip.ParseAddr(x.IP)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, dhcp.Lease{MAC: mac, IP: ip, Expiry: x.Expiry, Hostname: x.Hostname})
		l.mirror.Put(mac, ip, x.Expiry)
	}
	return out, nil
}

func (l leaseStore) PutLease(x dhcp.Lease) error {
	err := l.s.PutLease(inventory.Lease{MAC: x.MAC.String(), IP: x.IP.String(), Expiry: x.Expiry, Hostname: x.Hostname})
	if err == nil {
		l.mirror.Put(x.MAC, x.IP, x.Expiry)
	}
	return err
}

func (l leaseStore) DeleteLease(mac net.HardwareAddr) error {
	err := l.s.DeleteLease(mac.String())
	if err == nil {
		l.mirror.Delete(mac)
	}
	return err
}

// dhcpEventDetail is the event text for one DHCP reply.
func dhcpEventDetail(mode string, r dhcp.Reply) string {
	d := mode + " " + r.Type.String()
	if r.IP.IsValid() {
		d += " " + r.IP.String()
	}
	if r.BootFile == "" {
		// The installer's own DHCP client (or any OS): an address, no boot.
		return d + ", no boot file (not a PXE client)"
	}
	return d + " arch " + r.Client.Arch.String() + " boot " + r.BootFile
}
