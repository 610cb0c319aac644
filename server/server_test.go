package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/dhcp"
	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/ipxe"
	"github.com/stagehand-dev/stagehand/metrics"
	"github.com/stagehand-dev/stagehand/server"
	"github.com/stagehand-dev/stagehand/tftp"
)

const token = "operator-token-for-tests"

// running is one server.Run on loopback sockets the test opened.
type running struct {
	t      *testing.T
	srv    *server.Server
	base   string
	tftp   net.Addr
	data   string
	bios   []byte // undionly.kpxe's bytes
	cancel context.CancelFunc
	done   chan error
}

// start builds a server on 127.0.0.1:0 sockets; mod may change the Config.
func start(t *testing.T, mod func(*server.Config)) *running {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ipxeDir := t.TempDir()
	bios := bytes.Repeat([]byte("undionly-kpxe "), 300) // several blocks
	for name, b := range map[string][]byte{ipxe.FileBIOS: bios, ipxe.FileEFISNPOnly: []byte("snponly")} {
		if err := os.WriteFile(filepath.Join(ipxeDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &running{t: t, data: t.TempDir(), bios: bios, tftp: pc.LocalAddr(), done: make(chan error, 1)}
	cfg := server.Config{
		Addr: netip.MustParseAddr("127.0.0.1"), HTTPPort: ln.Addr().(*net.TCPAddr).Port,
		DataDir: r.data, IPXEDir: ipxeDir, DHCPMode: server.DHCPOff,
		// Loopback with DHCP off: no lease, exchange or neighbour entry
		// can tie a MAC to the client, so stage 2 trusts the MAC it names
		// (the binding itself is api's and attrib's tests' subject).
		MACBinding:   api.MACBindingOff,
		TFTP:         server.TFTPConfig{MaxIdle: time.Minute},
		DrainTimeout: 5 * time.Second,
		Log:          zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	if mod != nil {
		mod(&cfg)
	}
	r.srv, err = server.New(cfg, token)
	if err != nil {
		ln.Close()
		pc.Close()
		t.Fatal(err)
	}
	r.base = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.srv.Run(ctx, server.Listeners{HTTP: ln, TFTP: pc}) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop cancels Run and returns what it returned.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		r.t.Fatal("Run did not return after cancel")
		return nil
	}
}

func (r *running) get(path string, auth bool) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.base+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *running) read(path string) string {
	r.t.Helper()
	res := r.get(path, true)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		r.t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	return string(b)
}

// metric is one sample's value from /metrics, -1 when absent.
func (r *running) metric(sample string) float64 {
	r.t.Helper()
	for _, l := range strings.Split(r.read("/metrics"), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

const hostMAC = "52:54:00:00:00:01"

// known adds a host and makes 127.0.0.1 its address, the way a boot does
// (stage 2 from that address), so TFTP from loopback is recorded on it.
func (r *running) known() {
	r.t.Helper()
	if _, err := r.srv.Store().CreateHost(inventory.Host{MAC: hostMAC}); err != nil {
		r.t.Fatal(err)
	}
	res := r.get("/ipxe?mac="+hostMAC, false)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		r.t.Fatalf("stage 2: %d", res.StatusCode)
	}
}

// ---- a minimal TFTP client: RRQ, DATA, ACK, ERROR ----

func rrq(name string) []byte {
	return append([]byte{0, 1}, name+"\x00octet\x00"...)
}

func tftpConn(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv reads one packet, failing the test after 10 s.
func recv(t *testing.T, c net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("tftp: %v", err)
	}
	return buf[:n], from
}

// hold starts a transfer, acknowledges its first block and no more: it
// holds a slot as a client that answered (one that never answered would
// give its slot to the next request). It returns the transfer's address,
// to abort it.
func hold(t *testing.T, c net.PacketConn, server net.Addr) net.Addr {
	t.Helper()
	c.WriteTo(rrq(ipxe.FileBIOS), server)
	p, from := recv(t, c)
	if binary.BigEndian.Uint16(p) != 3 || p[3] != 1 {
		t.Fatalf("holding a slot: got %q, want DATA 1", p)
	}
	c.WriteTo([]byte{0, 4, 0, 1}, from)
	if p, _ = recv(t, c); binary.BigEndian.Uint16(p) != 3 || p[3] != 2 {
		t.Fatalf("holding a slot: got %q, want DATA 2", p)
	}
	return from
}

// fetch runs a whole lock-step transfer and returns the file.
func fetch(t *testing.T, server net.Addr, name string) []byte {
	t.Helper()
	c := tftpConn(t)
	c.WriteTo(rrq(name), server)
	var out []byte
	for want := uint16(1); ; want++ {
		p, from := recv(t, c)
		if op := binary.BigEndian.Uint16(p); op != 3 || binary.BigEndian.Uint16(p[2:]) != want {
			t.Fatalf("block %d: got %q", want, p)
		}
		out = append(out, p[4:]...)
		c.WriteTo([]byte{0, 4, p[2], p[3]}, from)
		if len(p)-4 < 512 {
			return out
		}
	}
}

// A flood of TFTP requests over the cap while the event store is held:
// every refusal is answered at once and normal transfers run, because the
// refusal path hands its event to the recorder and never waits on a
// commit; the recorder drops what its queue cannot hold, counted and
// exported on /metrics.
func TestTFTPRefusalFloodNeverWaitsOnCommit(t *testing.T) {
	var held *heldSink
	const queue, batch, flood = 16, 4, 200
	r := start(t, func(c *server.Config) {
		c.TFTP.MaxTransfers = 2
		c.Events = events.Config{Queue: queue, Batch: batch}
		c.EventSink = func(s events.Sink) events.Sink { held = newHeldSink(s); return held }
		c.Metrics = func(mw *metrics.Writer, _ *dhcp.Server, ts *tftp.Server) {
			mw.Counter("test_tftp_refused_busy", "", nil, float64(ts.Stats().RefusedBusy))
			mw.Counter("test_tftp_ok", "", nil, float64(ts.Stats().TransfersOK))
			mw.Gauge("test_tftp_active", "", nil, float64(ts.Stats().Active))
		}
	})
	t.Cleanup(func() { held.open() }) // before Run's shutdown (cleanups run last first)
	r.known()

	// Both slots held by transfers that stopped acknowledging.
	h1, h2 := tftpConn(t), tftpConn(t)
	t1 := hold(t, h1, r.tftp)
	t2 := hold(t, h2, r.tftp)

	// The flood: every request gets its ERROR, the store held throughout.
	// The first refusal's event starts the committer; once it is inside
	// the held sink the queue only fills, so what follows is dropped
	// whatever the scheduler does.
	c := tftpConn(t)
	c.WriteTo(rrq(ipxe.FileBIOS), r.tftp)
	select {
	case <-held.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first refusal's event never reached the store")
	}
	for range flood - 1 {
		c.WriteTo(rrq(ipxe.FileBIOS), r.tftp)
	}
	for i := range flood {
		if p, _ := recv(t, c); binary.BigEndian.Uint16(p) != 5 || !strings.Contains(string(p), "busy") {
			t.Fatalf("refusal %d: %q", i, p)
		}
	}
	if got := r.metric("test_tftp_refused_busy"); got != flood {
		t.Fatalf("refused %v, want %d", got, flood)
	}
	// Each refusal's event is recorded just after its packet is sent: the
	// first is in the held commit, the queue holds the next ones, and
	// every later one is dropped.
	want := uint64(flood - 1 - queue)
	st := r.srv.Events().Stats()
	for deadline := time.Now().Add(10 * time.Second); st.DroppedFull < want && time.Now().Before(deadline); st = r.srv.Events().Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	if st.DroppedFull != want || st.Committed != 0 {
		t.Fatalf("recorder while the store is held: %+v; want %d dropped, none committed", st, want)
	}
	if got := r.metric(`stagehand_events_dropped_total{reason="queue_full"}`); got != float64(st.DroppedFull) {
		t.Errorf("/metrics says %v dropped, the recorder %d", got, st.DroppedFull)
	}

	// A slot frees (the client aborts), and a normal transfer runs whole,
	// the store still held; its event is dropped too.
	h1.WriteTo([]byte("\x00\x05\x00\x00aborted\x00"), t1)
	for r.metric("test_tftp_active") != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := fetch(t, r.tftp, ipxe.FileBIOS); !bytes.Equal(got, r.bios) {
		t.Fatalf("transfer while the store is held: %d bytes, want %d", len(got), len(r.bios))
	}
	// The server counts the transfer when the client's last ACK arrives,
	// which the client does not wait for.
	for deadline := time.Now().Add(10 * time.Second); r.metric("test_tftp_ok") != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the transfer was not counted as completed")
		}
	}
	// The aborted and the finished transfer report after their last
	// packet; both events are dropped.
	for deadline := time.Now().Add(10 * time.Second); r.srv.Events().Stats().DroppedFull < st.DroppedFull+2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the two transfers' events were not dropped: %+v then %+v", st, r.srv.Events().Stats())
		}
	}

	// Released, the queued refusals are committed on the host.
	held.open()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Events().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ev, err := r.srv.Store().Events(hostMAC)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ev {
		if e.Kind == "tftp" && strings.Contains(e.Detail, "too many concurrent transfers") {
			n++
		}
	}
	if n == 0 || n > queue+batch {
		t.Errorf("%d refusal events committed, want 1-%d", n, queue+batch)
	}
	h2.WriteTo([]byte("\x00\x05\x00\x00aborted\x00"), t2)
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// heldSink holds every commit until release is closed; entered is
// closed when the first commit arrives.
type heldSink struct {
	next          events.Sink
	release       chan struct{}
	entered       chan struct{}
	once, arrived sync.Once
}

func newHeldSink(next events.Sink) *heldSink {
	return &heldSink{next: next, release: make(chan struct{}), entered: make(chan struct{})}
}

func (h *heldSink) open() { h.once.Do(func() { close(h.release) }) }

func (h *heldSink) AddEvents(evs []inventory.HostEvent) (int, error) {
	h.arrived.Do(func() { close(h.entered) })
	<-h.release
	return h.next.AddEvents(evs)
}

// Shutdown ends an open event stream, drains, commits the recorder's
// queue and closes the store and every socket; Run returns nil.
func TestRunShutdownEndsStreams(t *testing.T) {
	r := start(t, nil)
	r.known()
	res := r.get("/api/v1/events?follow=1", true)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// A TFTP transfer's event reaches the stream through the recorder,
	// the store and the feed.
	fetch(t, r.tftp, ipxe.FileBIOS)
	select {
	case l := <-lines:
		var e inventory.StoredEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Kind != "tftp" || e.MAC != hostMAC {
			t.Fatalf("stream line %q (%v)", l, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the stream")
	}

	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for range lines { // the stream ended: the reader saw EOF
	}
	res.Body.Close()
	if _, err := http.Get(r.base + "/healthz"); err == nil {
		t.Error("HTTP still served after Run returned")
	}
	st, err := inventory.Open(r.data, inventory.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store still held after Run returned: %v", err)
	}
	st.Close()
}

// Run owns its listeners: when it cannot serve on them it closes them,
// and the store.
func TestRunClosesListenersOnError(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ipxeDir := t.TempDir()
	for _, name := range []string{ipxe.FileBIOS, ipxe.FileEFISNPOnly} {
		os.WriteFile(filepath.Join(ipxeDir, name), []byte("x"), 0o644)
	}
	data := t.TempDir()
	srv, err := server.New(server.Config{Addr: netip.MustParseAddr("127.0.0.1"), HTTPPort: 1, DataDir: data, IPXEDir: ipxeDir}, token)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(t.Context(), server.Listeners{HTTP: ln, TFTP: pc})
	if err == nil || !strings.Contains(err.Error(), "URLs handed to hosts name port 1") {
		t.Fatalf("Run on the wrong port: %v", err)
	}
	if _, err := net.Listen("tcp4", ln.Addr().String()); err != nil {
		t.Errorf("HTTP listener still open: %v", err)
	}
	if _, err := net.ListenPacket("udp4", pc.LocalAddr().String()); err != nil {
		t.Errorf("TFTP socket still open: %v", err)
	}
	st, err := inventory.Open(data, inventory.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store still held: %v", err)
	}
	st.Close()
}

// New refuses what cannot serve, before the caller binds anything, and
// leaves the data dir free.
func TestNewRefuses(t *testing.T) {
	ipxeDir := t.TempDir()
	for _, name := range []string{ipxe.FileBIOS, ipxe.FileEFISNPOnly} {
		os.WriteFile(filepath.Join(ipxeDir, name), []byte("x"), 0o644)
	}
	base := server.Config{Addr: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080, IPXEDir: ipxeDir}
	for _, tc := range []struct {
		mod  func(*server.Config)
		want string
	}{
		{func(c *server.Config) { c.UnknownHosts = "nosuchprofile" }, `--unknown-hosts "nosuchprofile"`},
		{func(c *server.Config) { c.DHCPMode = "relay" }, `--dhcp-mode "relay"`},
		{func(c *server.Config) { c.EFIBinary = ipxe.FileEFIFull }, "ipxe.efi is missing"},
		{func(c *server.Config) { c.DHCPMode = server.DHCPFull }, "dhcp: full mode needs a"},
	} {
		cfg := base
		cfg.DataDir = t.TempDir()
		tc.mod(&cfg)
		if _, err := server.New(cfg, token); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v; want %q", err, tc.want)
		}
		st, err := inventory.Open(cfg.DataDir, inventory.Options{LockTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("data dir held after a refused New: %v", err)
		}
		st.Close()
	}
}
