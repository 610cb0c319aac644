package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/connlimit"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/server"
	"github.com/stagehand-dev/stagehand/tftp"
)

type serveOpts struct {
	listen, iface, dataDir          string
	dhcpMode, dhcpRouter            string
	dhcpDNS, trustedRelays          string
	dhcpRanges                      rangeFlag
	leaseTime                       time.Duration
	unknownShare                    int
	httpPort, tftpPort              int
	tftpMaxTransfers, tftpPerClient int
	discoverMax, discoverPerAddress int
	tftpMaxPending                  int
	tftpMaxIdle, tftpPendingTimeout time.Duration
	httpMaxConns, httpPerAddress    int
	httpIdleTimeout                 time.Duration
	ipxeDir, efiBinary              string
	unknown                         string
	logLevel, logFormat             string
	userDataIPBinding               bool
	macBinding                      string
	ipv6RA                          string
}

func serveFlags(fs *flag.FlagSet) *serveOpts {
	o := &serveOpts{}
	fs.StringVar(&o.listen, "listen-address", "", "IPv4 address to serve on; default: the first IPv4 address of --interface")
	fs.StringVar(&o.iface, "interface", "", "network interface facing the hosts; default: the one holding --listen-address")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/stagehand", "directory for the inventory database and the API token")
	fs.StringVar(&o.dhcpMode, "dhcp-mode", "proxy", "proxy (beside an existing DHCP server), full (isolated network) or off")
	fs.Var(&o.dhcpRanges, "dhcp-range", "full mode: address pool `RANGE`, START-END in the interface's subnet (e.g. 10.0.0.100-10.0.0.199), or START-END/PREFIX,router=IP[,dns=IP]... for a subnet behind a DHCP relay (e.g. 10.77.2.100-10.77.2.199/24,router=10.77.2.1); repeat it for more ranges")
	fs.StringVar(&o.dhcpRouter, "dhcp-router", "", "full mode: default gateway to hand out (option 3)")
	fs.StringVar(&o.dhcpDNS, "dhcp-dns", "", "full mode: comma-separated DNS servers to hand out (option 6)")
	fs.DurationVar(&o.leaseTime, "dhcp-lease-time", time.Hour, "full mode: lease time")
	fs.IntVar(&o.unknownShare, "dhcp-unknown-share", dhcp.DefaultUnknownShare, "full mode: percent of each subnet's --dhcp-range addresses that MACs not in the inventory may hold at once (1-100), so a flood of strangers cannot starve known hosts; reserved addresses (host --dhcp-address) are never given to others")
	fs.StringVar(&o.trustedRelays, "dhcp-trusted-relays", "", "comma-separated relay agent addresses or CIDRs (their giaddr) whose relayed DHCP requests are answered; the reply goes to giaddr, so by default none is and only the local segment is served (full mode: a giaddr inside the subnet of a --dhcp-range with /PREFIX,router= is trusted without being listed)")
	fs.StringVar(&o.ipv6RA, "ipv6-ra", server.IPv6RAAuto, "auto: answer the IPv6 router solicitations of hosts being booted (a DHCP reply in the last 5 minutes) on --interface with an advertisement that configures nothing, so iPXE goes on at once instead of waiting ~16 s; never while another IPv6 router advertises on the link. off: never")
	fs.IntVar(&o.httpPort, "http-port", 8080, "HTTP port for scripts, artifacts, user-data, callbacks and the API")
	fs.IntVar(&o.tftpPort, "tftp-port", 69, "TFTP port for the iPXE binaries")
	fs.IntVar(&o.tftpMaxTransfers, "tftp-max-transfers", tftp.DefaultMaxTransfers, "TFTP: concurrent transfers at most; more are refused with an ERROR the firmware retries")
	fs.IntVar(&o.tftpPerClient, "tftp-max-per-client", defaultTFTPPerClient, "TFTP: concurrent transfers from one IP address at most (0: no cap), so one client that never ACKs cannot hold every slot")
	fs.IntVar(&o.tftpMaxPending, "tftp-max-pending", tftp.DefaultMaxPending, "TFTP: transfers whose client has not yet answered the first packet, at most (counted in --tftp-max-transfers, and at most that); over it a new request takes the oldest one's slot, so requests that are never answered cannot starve machines that answer")
	fs.DurationVar(&o.tftpPendingTimeout, "tftp-pending-timeout", tftp.DefaultPendingTimeout, "TFTP: once half of --tftp-max-pending is in use, a transfer whose client has not answered for this long gives its slot to the next request (firmware answers within milliseconds)")
	fs.DurationVar(&o.tftpMaxIdle, "tftp-max-idle", tftp.DefaultMaxIdle, "TFTP: how long a transfer may go without a new ACK before it is dropped (resends back off 1,1,1,2,4,8 s meanwhile)")
	fs.IntVar(&o.httpMaxConns, "http-max-conns", connlimit.DefaultTotal, fmt.Sprintf("HTTP: connections at once (0: no cap); at the cap an idle connection is closed to make room, and a newcomer is reset only when every connection is busy. The operator (this host, or an address that presented the API token) has %d more", connlimit.Reserve))
	fs.IntVar(&o.httpPerAddress, "http-max-conns-per-address", connlimit.DefaultPerAddress, "HTTP: connections from one address at once (0: no cap); more are reset at once and counted, so one client cannot hold the port")
	fs.DurationVar(&o.httpIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "HTTP: how long a connection may wait for its first request's headers or its next request; a request in progress (a download, the event stream) is never cut")
	fs.StringVar(&o.ipxeDir, "ipxe-dir", ipxe.DefaultDir, "directory with undionly.kpxe and the EFI binary (Debian package ipxe)")
	fs.StringVar(&o.efiBinary, "efi-binary", ipxe.FileEFISNPOnly, "iPXE binary for UEFI x64 clients: snponly.efi or ipxe.efi")
	fs.StringVar(&o.unknown, "unknown-hosts", "ignore", "what to do with MACs not in the inventory: ignore, discover, or the name of a profile to install")
	fs.IntVar(&o.discoverMax, "discover-max", api.DefaultDiscoverMax, "--unknown-hosts discover: discovered records at most (0: no cap); past it a new MAC gets no record")
	fs.IntVar(&o.discoverPerAddress, "discover-per-address", api.DefaultDiscoverPerAddress, "--unknown-hosts discover: records one client address may create per hour (0: no cap); the address stage 2 comes from")
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
	w, err := logWriter(format)
	if err != nil {
		return zerolog.Nop(), err
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
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

// parsePrefixes parses comma-separated IPv4 addresses (as /32) and CIDRs.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if a, aerr := netip.ParseAddr(f); aerr == nil {
			p, err = netip.PrefixFrom(a, 32), nil
		}
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address or CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
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
	// Above --tftp-max-transfers it is --tftp-max-transfers (a lowered
	// transfer cap needs no second flag).
	if o.tftpMaxPending < 1 {
		return fmt.Errorf("--tftp-max-pending %d: want at least 1", o.tftpMaxPending)
	}
	// Under a second, a client whose first answer is delayed by one loss
	// would lose its slot during a flood; past --tftp-max-idle it never
	// would.
	if o.tftpPendingTimeout < time.Second || o.tftpPendingTimeout > o.tftpMaxIdle {
		return fmt.Errorf("--tftp-pending-timeout %s: want 1s to --tftp-max-idle (%s)", o.tftpPendingTimeout, o.tftpMaxIdle)
	}
	return nil
}

// checkHTTP refuses HTTP bounds that would stop the server from serving.
func (o *serveOpts) checkHTTP() error {
	if o.httpMaxConns < 0 {
		return fmt.Errorf("--http-max-conns %d: want 0 (no cap) or more", o.httpMaxConns)
	}
	if o.httpPerAddress < 0 {
		return fmt.Errorf("--http-max-conns-per-address %d: want 0 (no cap) or more", o.httpPerAddress)
	}
	// Below a second, a host on a busy link could be cut off between
	// the TCP handshake and its request line.
	if o.httpIdleTimeout < time.Second {
		return fmt.Errorf("--http-idle-timeout %s: want at least 1s", o.httpIdleTimeout)
	}
	return nil
}

// noCap maps a flag's 0 (no cap) to the api's "no bound", whose zero
// value means the default.
func noCap(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// runServe is `stagehand serve`: the sockets a service manager passed
// (socket activation), flags, then a checked Config, then the missing
// sockets, then the server, which owns them all from there on.
func runServe(ctx context.Context, args []string) error {
	in, err := server.InheritedFromEnv()
	if err != nil {
		return err
	}
	return serve(ctx, args, in)
}

// serve runs the server on the sockets in (tests open their own) and
// binds the rest. It owns in: every path closes them or hands them on.
func serve(ctx context.Context, args []string, in server.Inherited) error {
	srv, log, err := newServe(args, in)
	if err != nil {
		in.Close()
		return err
	}
	// Everything that can be checked has been: only now bind.
	ls, err := in.Listen(srv.cfg.Addr, srv.cfg.Interface, srv.httpPort, srv.tftpPort, srv.cfg.DHCPMode, log)
	if err != nil {
		srv.Close()
		return err
	}
	return srv.Run(ctx, ls)
}

// built is a server ready to bind, with what binding needs.
type built struct {
	*server.Server
	cfg                server.Config
	httpPort, tftpPort int
}

func newServe(args []string, in server.Inherited) (built, zerolog.Logger, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o := serveFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return built{}, zerolog.Nop(), err
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return built{}, log, err
	}
	if err := o.inheritPorts(fs, in); err != nil {
		return built{}, log, err
	}
	cfg, err := o.config(log)
	if err != nil {
		return built{}, log, err
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return built{}, log, fmt.Errorf("data dir %s: %w", o.dataDir, err)
	}
	token, err := loadToken(o.dataDir)
	if err != nil {
		return built{}, log, err
	}
	srv, err := server.New(cfg, token)
	if err != nil {
		return built{}, log, err
	}
	return built{Server: srv, cfg: cfg, httpPort: o.httpPort, tftpPort: o.tftpPort}, log, nil
}

// inheritPorts takes the ports of inherited sockets: the socket unit is
// the one place they are set. A --http-port or --tftp-port given (flag,
// environment or config file) that names another port is refused, since
// hosts would be sent to a port nobody serves.
func (o *serveOpts) inheritPorts(fs *flag.FlagSet, in server.Inherited) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, p := range []struct {
		flag      string
		port      *int
		inherited int
	}{{"http-port", &o.httpPort, in.HTTPPort()}, {"tftp-port", &o.tftpPort, in.TFTPPort()}} {
		if p.inherited == 0 {
			continue
		}
		if given[p.flag] && *p.port != p.inherited {
			return fmt.Errorf("--%s %d, but the socket passed by socket activation is on port %d: drop --%s or make them match", p.flag, *p.port, p.inherited, p.flag)
		}
		*p.port = p.inherited
	}
	return nil
}

// config turns the flags into a server.Config, refusing every value that
// could not serve. It binds and opens nothing.
func (o *serveOpts) config(log zerolog.Logger) (server.Config, error) {
	cfg := server.Config{
		HTTPPort: o.httpPort, DataDir: o.dataDir, IPXEDir: o.ipxeDir, EFIBinary: o.efiBinary,
		UnknownHosts: o.unknown, UserDataIPBinding: o.userDataIPBinding,
		DHCPMode: strings.ToLower(o.dhcpMode), IPv6RA: o.ipv6RA,
		TFTP: server.TFTPConfig{MaxTransfers: o.tftpMaxTransfers, MaxPending: o.tftpMaxPending, PendingTimeout: o.tftpPendingTimeout,
			MaxPerClient: o.tftpPerClient, MaxIdle: o.tftpMaxIdle},
		HTTP: server.HTTPConfig{
			Conns:       connlimit.Config{PerAddress: o.httpPerAddress, Total: o.httpMaxConns},
			IdleTimeout: o.httpIdleTimeout,
		},
		Discover: api.DiscoverLimit{Max: noCap(o.discoverMax), PerAddress: noCap(o.discoverPerAddress)},
		Log:      log,
		Metrics: func(mw *metrics.Writer, d *dhcp.Server, t *tftp.Server) {
			writeServerMetrics(mw, strings.ToLower(o.dhcpMode), d, t)
		},
	}
	var err error
	if cfg.MACBinding, err = api.ParseMACBinding(o.macBinding); err != nil {
		return cfg, fmt.Errorf("--mac-binding %q: want strict or off", o.macBinding)
	}
	if cfg.Addr, cfg.Interface, err = resolveAddr(o.listen, o.iface); err != nil {
		return cfg, err
	}
	switch cfg.DHCPMode {
	case server.DHCPOff, server.DHCPProxy, server.DHCPFull:
	default:
		return cfg, fmt.Errorf("--dhcp-mode %q: want proxy, full or off", o.dhcpMode)
	}
	if o.ipv6RA != server.IPv6RAAuto && o.ipv6RA != server.IPv6RAOff {
		return cfg, fmt.Errorf("--ipv6-ra %q: want auto or off", o.ipv6RA)
	}
	if o.efiBinary != ipxe.FileEFISNPOnly && o.efiBinary != ipxe.FileEFIFull {
		return cfg, fmt.Errorf("--efi-binary %q: want %s or %s", o.efiBinary, ipxe.FileEFISNPOnly, ipxe.FileEFIFull)
	}
	if o.httpPort < 1 || o.httpPort > 65535 {
		return cfg, fmt.Errorf("--http-port %d: want 1-65535", o.httpPort)
	}
	if err := o.checkTFTP(); err != nil {
		return cfg, err
	}
	if err := o.checkHTTP(); err != nil {
		return cfg, err
	}
	if o.discoverMax < 0 || o.discoverPerAddress < 0 {
		return cfg, fmt.Errorf("--discover-max %d, --discover-per-address %d: want 0 (no cap) or more", o.discoverMax, o.discoverPerAddress)
	}
	if cfg.DHCP.TrustedRelays, err = parsePrefixes(o.trustedRelays); err != nil {
		return cfg, fmt.Errorf("--dhcp-trusted-relays: %w", err)
	}
	if cfg.DHCPMode == server.DHCPFull {
		err = o.fullDHCP(&cfg)
	}
	return cfg, err
}

// fullDHCP fills the full-mode DHCP settings.
func (o *serveOpts) fullDHCP(cfg *server.Config) error {
	d := &cfg.DHCP
	var router netip.Addr
	if o.dhcpRouter != "" {
		var err error
		if router, err = netip.ParseAddr(o.dhcpRouter); err != nil || !router.Is4() {
			return fmt.Errorf("--dhcp-router %q is not an IPv4 address", o.dhcpRouter)
		}
	}
	dns, err := parseIPs(o.dhcpDNS)
	if err != nil {
		return fmt.Errorf("--dhcp-dns: %w", err)
	}
	local, err := localPrefix(cfg.Interface, cfg.Addr)
	if err != nil {
		return err
	}
	if d.Ranges, err = dhcpRanges(o.dhcpRanges, local, router, addrs(dns)); err != nil {
		return err
	}
	d.LeaseTime = o.leaseTime
	if o.unknownShare < 1 || o.unknownShare > 100 {
		return fmt.Errorf("--dhcp-unknown-share %d: want a percentage 1-100", o.unknownShare)
	}
	d.UnknownShare = o.unknownShare
	return nil
}
