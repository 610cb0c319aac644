package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/connlimit"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/tftp"
)

// DHCP modes, as --dhcp-mode spells them.
const (
	DHCPOff   = "off"
	DHCPProxy = "proxy"
	DHCPFull  = "full"
)

// IPv6 router advertisement settings, as --ipv6-ra spells them.
const (
	IPv6RAAuto = "auto"
	IPv6RAOff  = "off"
)

// DefaultDrainTimeout bounds each shutdown step: in-flight TFTP and HTTP
// transfers, then the recorder's last commit.
const DefaultDrainTimeout = 10 * time.Second

// Config is everything a server needs; the caller has parsed and checked
// what the operator gave (flags, environment, file). Zero values are
// documented defaults where a field has one.
type Config struct {
	// Addr is the address on the provisioning network; it goes into every
	// URL and DHCP option handed to hosts. Required, IPv4.
	Addr netip.Addr
	// Interface faces the hosts; the DHCP sockets are bound to it.
	Interface string
	// HTTPPort is the port in the URLs handed to hosts; the HTTP
	// listener must be on it. Required.
	HTTPPort int
	// DataDir holds the inventory and the operator token. Required.
	DataDir string
	// IPXEDir holds undionly.kpxe and EFIBinary. Required.
	IPXEDir   string
	EFIBinary string // ipxe.FileEFISNPOnly (default) or ipxe.FileEFIFull

	// UnknownHosts is what to do with MACs not in the inventory:
	// "ignore" (default), "discover" or the name of a profile.
	UnknownHosts      string
	UserDataIPBinding bool
	// MACBinding is stage 2's rule for the MAC a client names: strict
	// (the zero value) needs evidence from attrib that the MAC is at the
	// requesting address.
	MACBinding api.MACBinding
	// Discover bounds what UnknownHosts "discover" records.
	Discover api.DiscoverLimit

	// DHCPMode is DHCPOff (default), DHCPProxy or DHCPFull. DHCP carries
	// the full-mode settings (Ranges, LeaseTime, UnknownShare) and
	// TrustedRelays; the rest of it is filled in here.
	DHCPMode string
	DHCP     dhcp.Config
	// IPv6RA is IPv6RAAuto (default, "") or IPv6RAOff: whether hosts
	// being booted get an answer to their IPv6 router solicitations on
	// Interface (package ra). Only with DHCP on.
	IPv6RA string
	// TFTP bounds; zero values are the tftp package's defaults.
	TFTP TFTPConfig
	// HTTP bounds the HTTP port's connections.
	HTTP HTTPConfig

	// DrainTimeout bounds each shutdown step; 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Events tunes the recorder (Queue, Batch). Its Sink is the store
	// unless EventSink wraps it.
	Events events.Config
	// EventSink, if set, is given the store and returns the recorder's
	// sink: tests hold commits with it.
	EventSink func(events.Sink) events.Sink

	// Metrics, if set, adds the DHCP and TFTP counters to each scrape
	// (d is nil with DHCP off).
	Metrics func(mw *metrics.Writer, d *dhcp.Server, t *tftp.Server)
	Log     zerolog.Logger
}

// TFTPConfig bounds the TFTP server.
type TFTPConfig struct {
	MaxTransfers   int
	MaxPending     int
	PendingTimeout time.Duration
	MaxPerClient   int
	MaxIdle        time.Duration
}

// HTTPConfig bounds the HTTP port. Conns' zero values mean no cap
// (serve's flags give connlimit's defaults); IdleTimeout's zero value is
// DefaultHTTPIdleTimeout.
type HTTPConfig struct {
	Conns connlimit.Config
	// IdleTimeout closes a connection that waits this long for its next
	// request, or for its first request's headers. A request in progress
	// (a download, the event stream) is never cut: there is no write
	// timeout.
	IdleTimeout time.Duration
}

// DefaultHTTPIdleTimeout: iPXE and the installer send their next request
// within milliseconds of the last answer, so a few seconds are plenty,
// and a stranger's idle connection costs a slot for no longer.
const DefaultHTTPIdleTimeout = 5 * time.Second

// check refuses a Config that could not serve, before anything is bound
// or opened.
func (c *Config) check() error {
	if !c.Addr.Is4() {
		return fmt.Errorf("server address %v is not IPv4", c.Addr)
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		return fmt.Errorf("HTTP port %d out of range", c.HTTPPort)
	}
	if c.DataDir == "" {
		return errors.New("no data dir")
	}
	if c.EFIBinary == "" {
		c.EFIBinary = ipxe.FileEFISNPOnly
	}
	if c.UnknownHosts == "" {
		c.UnknownHosts = "ignore"
	}
	if c.DHCPMode == "" {
		c.DHCPMode = DHCPOff
	}
	if c.IPv6RA == "" {
		c.IPv6RA = IPv6RAAuto
	}
	if c.IPv6RA != IPv6RAAuto && c.IPv6RA != IPv6RAOff {
		return fmt.Errorf("--ipv6-ra %q: want auto or off", c.IPv6RA)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.HTTP.IdleTimeout <= 0 {
		c.HTTP.IdleTimeout = DefaultHTTPIdleTimeout
	}
	switch c.DHCPMode {
	case DHCPOff:
	case DHCPProxy:
		c.DHCP.Mode = dhcp.ModeProxy
	case DHCPFull:
		c.DHCP.Mode = dhcp.ModeFull
	default:
		return fmt.Errorf("--dhcp-mode %q: want proxy, full or off", c.DHCPMode)
	}
	return ipxe.CheckBinaries(c.IPXEDir, ipxe.FileBIOS, c.EFIBinary)
}

// Listeners are the sockets a server serves on. Run owns them from the
// moment it is called and closes them on every path.
type Listeners struct {
	HTTP net.Listener
	TFTP net.PacketConn
	// DHCP: port 67, and 4011 in proxy mode; none with DHCP off.
	DHCP []net.PacketConn
}

// Close closes every listener that is set.
func (ls Listeners) Close() {
	if ls.HTTP != nil {
		ls.HTTP.Close()
	}
	if ls.TFTP != nil {
		ls.TFTP.Close()
	}
	for _, c := range ls.DHCP {
		c.Close()
	}
}

// DHCPPorts are the ports a DHCP mode listens on.
func DHCPPorts(mode string) []int {
	switch mode {
	case DHCPFull:
		return []int{67}
	case DHCPProxy:
		return []int{67, 4011} // 4011: PXE boot server discovery, OVMF's REQUEST after a proxy offer
	}
	return nil
}

// Listen binds what cfg asks for on addr: HTTP and TFTP, and the DHCP
// ports of the mode on iface. On any error it closes what it had bound.
func Listen(addr netip.Addr, iface string, httpPort, tftpPort int, dhcpMode string, log zerolog.Logger) (Listeners, error) {
	return Inherited{}.Listen(addr, iface, httpPort, tftpPort, dhcpMode, log)
}

// Listen is the package's Listen with the sockets in taken as given (an
// inherited DHCP socket is used as is: systemd's BindToDevice= pins it)
// and only the missing ones bound. It owns in from the call: on any
// error it closes them with what it had bound. A DHCP socket the mode
// does not serve, or a socket on another port than asked for, is an
// error.
func (in Inherited) Listen(addr netip.Addr, iface string, httpPort, tftpPort int, dhcpMode string, log zerolog.Logger) (Listeners, error) {
	ls := Listeners{HTTP: in.HTTP, TFTP: in.TFTP}
	given := map[int]net.PacketConn{67: in.DHCP, 4011: in.DHCPPXE}
	fail := func(err error) (Listeners, error) {
		ls.Close()
		for _, c := range given {
			if c != nil {
				c.Close()
			}
		}
		return Listeners{}, err
	}
	if err := in.checkPorts(httpPort, tftpPort, dhcpMode); err != nil {
		return fail(err)
	}
	host := addr.String()
	var err error
	if ls.HTTP == nil {
		if ls.HTTP, err = net.Listen("tcp4", net.JoinHostPort(host, fmt.Sprint(httpPort))); err != nil {
			return fail(portError("HTTP", httpPort, host, err))
		}
	}
	if ls.TFTP == nil {
		if ls.TFTP, err = net.ListenPacket("udp4", net.JoinHostPort(host, fmt.Sprint(tftpPort))); err != nil {
			return fail(portError("TFTP", tftpPort, host, err))
		}
	}
	for _, p := range DHCPPorts(dhcpMode) {
		c := given[p]
		delete(given, p)
		if c == nil {
			if c, err = dhcp.ListenUDP(iface, p); err != nil {
				return fail(portError("DHCP", p, iface, err))
			}
		}
		ls.DHCP = append(ls.DHCP, c)
		if got := dhcp.ReceiveBuffer(c); got > 0 && got < dhcp.ReceiveBufferWanted {
			log.Warn().Int("port", p).Int("bytes", got).Int("wanted", dhcp.ReceiveBufferWanted).
				Msg("DHCP receive buffer is small, so a rack powering on at once may overflow it: give the server CAP_NET_ADMIN, or raise net.core.rmem_max to 4194304")
		}
	}
	return ls, nil
}

// checkPorts refuses inherited sockets that do not fit what the server
// was told: the HTTP port is in every URL handed to hosts.
func (in Inherited) checkPorts(httpPort, tftpPort int, dhcpMode string) error {
	if p := in.HTTPPort(); in.HTTP != nil && p != httpPort {
		return fmt.Errorf("socket activation: the inherited HTTP socket is on port %d, but the server was told port %d (--http-port)", p, httpPort)
	}
	if p := in.TFTPPort(); in.TFTP != nil && p != tftpPort {
		return fmt.Errorf("socket activation: the inherited TFTP socket is on port %d, but the server was told port %d (--tftp-port)", p, tftpPort)
	}
	serves := map[int]bool{}
	for _, p := range DHCPPorts(dhcpMode) {
		serves[p] = true
	}
	for p, c := range map[int]net.PacketConn{67: in.DHCP, 4011: in.DHCPPXE} {
		if c != nil && !serves[p] {
			return fmt.Errorf("socket activation: an inherited DHCP socket for port %d, but DHCP mode %s does not serve it", p, dhcpMode)
		}
	}
	return nil
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

// unknownPolicy maps UnknownHosts to the decision's policy; a profile
// name is checked against the store by New.
func unknownPolicy(s string) (ipxe.UnknownPolicy, string) {
	switch s {
	case "ignore":
		return ipxe.UnknownIgnore, ""
	case "discover":
		return ipxe.UnknownDiscover, ""
	}
	return ipxe.UnknownProfile, s
}
