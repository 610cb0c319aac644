package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Steps of one host's boot, in order.
var steps = []string{
	"dhcp-discover", "pxe-request-4011", "tftp-nbp", "ipxe-dhcp",
	"stage1", "stage2", "kernel", "initrd", "userdata", "callback",
}

type loadOpts struct {
	n, conc                int
	ramp, hostTimeout      time.Duration
	server                 netip.Addr
	httpPort, tftpPort     int
	dev, arch, ipxeDir     string
	kernelSize, initrdSize int64
	serverPID              int
	out                    string
}

// hostResult is one host's run.
type hostResult struct {
	dur     [10]time.Duration // per step, indexed like steps
	total   time.Duration
	retrans int
	failed  string // "step: error", empty on success
}

// Result is one load run, written as JSON.
type Result struct {
	N             int                  `json:"n"`
	Concurrency   int                  `json:"concurrency"`
	RampSeconds   float64              `json:"rampSeconds"`
	Arch          string               `json:"arch"`
	KernelBytes   int64                `json:"kernelBytes"`
	InitrdBytes   int64                `json:"initrdBytes"`
	TotalSeconds  float64              `json:"totalSeconds"`
	OK            int                  `json:"ok"`
	Failed        int                  `json:"failed"`
	Failures      []string             `json:"failures,omitempty"` // the first few
	Retransmits   int                  `json:"dhcpRetransmits"`
	Steps         map[string]StepStats `json:"steps"`
	HostTotal     StepStats            `json:"hostTotal"`
	BytesReceived int64                `json:"bytesReceived"`
	Server        ServerUsage          `json:"server"`
}

// ServerUsage is the server process's cost over the run, from /proc.
type ServerUsage struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpuSeconds"`  // utime+stime during the run
	RSSBeforeK int64   `json:"rssBeforeKB"` // VmRSS just before the load: idle, hosts loaded
	HWMAfterK  int64   `json:"hwmAfterKB"`  // VmHWM after the load: peak since start
	RSSAfterK  int64   `json:"rssAfterKB"`
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var o loadOpts
	var server string
	fs.IntVar(&o.n, "n", 100, "hosts")
	fs.IntVar(&o.conc, "c", 200, "hosts booting at once at most")
	fs.DurationVar(&o.ramp, "ramp", 3*time.Second, "hosts power on spread evenly over this time")
	fs.DurationVar(&o.hostTimeout, "host-timeout", 5*time.Minute, "give up on a host after this long")
	fs.StringVar(&server, "server", "10.250.4.1", "stagehand's address")
	fs.IntVar(&o.httpPort, "http-port", 8080, "stagehand's HTTP port (for the check of the DHCP boot URL)")
	fs.IntVar(&o.tftpPort, "tftp-port", 69, "stagehand's TFTP port")
	fs.StringVar(&o.dev, "dev", "", "interface of the client namespace (for the broadcast DHCP socket)")
	fs.StringVar(&o.arch, "arch", "bios", "firmware: bios (undionly.kpxe), uefi (snponly.efi) or mix (alternating)")
	fs.StringVar(&o.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "where the iPXE binaries are, to check what TFTP delivers")
	fs.Int64Var(&o.kernelSize, "kernel-size", 0, "expected kernel size in bytes (0: do not check)")
	fs.Int64Var(&o.initrdSize, "initrd-size", 0, "expected initrd size in bytes (0: do not check)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "PID of the stagehand server, for CPU and memory from /proc")
	fs.StringVar(&o.out, "o", "", "write the JSON result here (default standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.server, err = netip.ParseAddr(server); err != nil || !o.server.Is4() {
		return fmt.Errorf("-server %q: not an IPv4 address", server)
	}
	if o.n < 1 || o.n > maxHosts || o.conc < 1 || o.dev == "" {
		return fmt.Errorf("need 1 <= -n <= %d, -c >= 1 and -dev", maxHosts)
	}
	if o.arch != "bios" && o.arch != "uefi" && o.arch != "mix" {
		return fmt.Errorf("-arch %q: want bios, uefi or mix", o.arch)
	}
	res, err := load(o)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	b = append(b, '\n')
	if o.out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(o.out, b, 0o644)
}

// rig is what all hosts share.
type rig struct {
	o      loadOpts
	bc     *bcastClient
	nbp    map[string][]byte // boot file name → expected bytes
	bufs   sync.Pool         // 256 KiB read buffers
	script string            // the boot URL iPXE must be given
}

func load(o loadOpts) (*Result, error) {
	bc, err := newBcastClient(o.dev)
	if err != nil {
		return nil, err
	}
	defer bc.Close()
	r := &rig{o: o, bc: bc, nbp: map[string][]byte{},
		script: fmt.Sprintf("http://%s:%d/boot.ipxe", o.server, o.httpPort)}
	r.bufs.New = func() any { b := make([]byte, 256<<10); return &b }
	for _, fw := range []firmware{fwBIOS, fwUEFI} {
		b, err := os.ReadFile(filepath.Join(o.ipxeDir, fw.nbpFile))
		if err != nil {
			return nil, err
		}
		r.nbp[fw.nbpFile] = b
	}

	var before procUsage
	if o.serverPID > 0 {
		if before, err = readProc(o.serverPID); err != nil {
			return nil, err
		}
	}

	results := make([]hostResult, o.n)
	sem := make(chan struct{}, o.conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.n {
		// Power-on: host i is switched on at i/N of the ramp, and boots
		// once one of the conc slots is free.
		if d := time.Until(start.Add(o.ramp * time.Duration(i) / time.Duration(o.n))); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = r.boot(rackHost(i))
		})
	}
	wg.Wait()
	total := time.Since(start)

	res := &Result{N: o.n, Concurrency: o.conc, RampSeconds: o.ramp.Seconds(), Arch: o.arch,
		KernelBytes: o.kernelSize, InitrdBytes: o.initrdSize, TotalSeconds: total.Seconds(),
		Steps: map[string]StepStats{}}
	if o.serverPID > 0 {
		after, err := readProc(o.serverPID)
		if err != nil {
			return nil, err
		}
		res.Server = ServerUsage{PID: o.serverPID, CPUSeconds: after.cpu - before.cpu,
			RSSBeforeK: before.rssKB, HWMAfterK: after.hwmKB, RSSAfterK: after.rssKB}
	}
	per := make([][]time.Duration, len(steps))
	var totals []time.Duration
	for _, h := range results {
		res.Retransmits += h.retrans
		if h.failed != "" {
			res.Failed++
			if len(res.Failures) < 20 {
				res.Failures = append(res.Failures, h.failed)
			}
			continue
		}
		res.OK++
		totals = append(totals, h.total)
		for s, d := range h.dur {
			per[s] = append(per[s], d)
		}
	}
	for s, name := range steps {
		res.Steps[name] = summarize(per[s])
	}
	res.HostTotal = summarize(totals)
	res.BytesReceived = int64(res.OK) * (o.kernelSize + o.initrdSize)
	return res, nil
}

// requestSite broadcasts h's REQUEST for its site address.
func (r *rig) requestSite(h host, fw firmware, ipxe bool) error {
	req, err := siteRequest(h, fw, ipxe)
	if err != nil {
		return err
	}
	if err := r.bc.announce(req); err != nil {
		return fmt.Errorf("site REQUEST: %w", err)
	}
	return nil
}

// boot plays host h through the chain, timing each step.
func (r *rig) boot(h host) (res hostResult) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.hostTimeout)
	defer cancel()
	fw := fwBIOS
	if r.o.arch == "uefi" || (r.o.arch == "mix" && h.idx%2 == 1) {
		fw = fwUEFI
	}
	begin := time.Now()
	step := 0
	fail := func(err error) hostResult {
		res.failed = fmt.Sprintf("%s %s: %v", h.mac, steps[step], err)
		return res
	}
	mark := func(t0 time.Time) {
		res.dur[step] = time.Since(t0)
		step++
	}

	// (1) Firmware DISCOVER, answered by the proxy with the NBP.
	t0 := time.Now()
	req, err := firmwareRequest(h, fw, dhcpv4.MessageTypeDiscover, false)
	if err != nil {
		return fail(err)
	}
	offer, n, err := r.bc.exchange(ctx, req, dhcpv4.MessageTypeOffer)
	res.retrans += n
	if err != nil {
		return fail(err)
	}
	if f := bootFile(offer); f != fw.nbpFile {
		return fail(fmt.Errorf("offer boot file %q, want %q", f, fw.nbpFile))
	}
	// ... and the REQUEST for the site server's address, which the proxy
	// overhears.
	if err := r.requestSite(h, fw, false); err != nil {
		return fail(err)
	}
	mark(t0)

	// (2) Boot server REQUEST on 4011 with the address the site DHCP gave.
	t0 = time.Now()
	ack, n, err := pxeRequest(ctx, h, fw, r.o.server.AsSlice())
	res.retrans += n
	if err != nil {
		return fail(err)
	}
	nbp := bootFile(ack)
	if nbp != fw.nbpFile {
		return fail(fmt.Errorf("ACK boot file %q, want %q", nbp, fw.nbpFile))
	}
	mark(t0)

	// (3) TFTP the NBP from the server the ACK names.
	t0 = time.Now()
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	got, err := tftpFetch(h.ip, netip.AddrPortFrom(r.o.server, uint16(r.o.tftpPort)), nbp, *bp)
	if err != nil {
		return fail(err)
	}
	if want := r.nbp[nbp]; !bytes.Equal((*bp)[:got], want) {
		return fail(fmt.Errorf("TFTP delivered %d bytes that differ from %s (%d bytes)", got, nbp, len(want)))
	}
	mark(t0)

	// (4) iPXE's own DHCP: must get the HTTP script, not the NBP again.
	t0 = time.Now()
	if req, err = firmwareRequest(h, fw, dhcpv4.MessageTypeDiscover, true); err != nil {
		return fail(err)
	}
	offer, n, err = r.bc.exchange(ctx, req, dhcpv4.MessageTypeOffer)
	res.retrans += n
	if err != nil {
		return fail(err)
	}
	if f := bootFile(offer); f != r.script {
		return fail(fmt.Errorf("iPXE offer boot file %q, want %q", f, r.script))
	}
	if err := r.requestSite(h, fw, true); err != nil {
		return fail(err)
	}
	mark(t0)

	// iPXE: one client for the scripts and the downloads.
	ipxeHTTP := hostClient(h.ip)
	defer ipxeHTTP.CloseIdleConnections()

	// (5) Stage 1.
	t0 = time.Now()
	body, err := get(ctx, ipxeHTTP, r.script, *bp)
	if err != nil {
		return fail(err)
	}
	s2, err := stage2URL(body, h, fw)
	if err != nil {
		return fail(err)
	}
	mark(t0)

	// (6) Stage 2: the install decision.
	t0 = time.Now()
	if body, err = get(ctx, ipxeHTTP, s2, *bp); err != nil {
		return fail(err)
	}
	inst, err := parseInstall(body)
	if err != nil {
		return fail(err)
	}
	mark(t0)

	// (7) Kernel and initrd.
	for _, a := range []struct {
		url  string
		size int64
	}{{inst.kernel, r.o.kernelSize}, {inst.initrd, r.o.initrdSize}} {
		t0 = time.Now()
		n, err := download(ctx, ipxeHTTP, a.url, *bp)
		if err != nil {
			return fail(err)
		}
		if a.size > 0 && n != a.size {
			return fail(fmt.Errorf("%s: %d bytes, want %d", a.url, n, a.size))
		}
		mark(t0)
	}
	ipxeHTTP.CloseIdleConnections()

	// (8) The installer (a new OS, new connections) fetches its config.
	inst2 := hostClient(h.ip)
	defer inst2.CloseIdleConnections()
	t0 = time.Now()
	if body, err = get(ctx, inst2, inst.configURL, *bp); err != nil {
		return fail(err)
	}
	cb, err := callbackURL(body)
	if err != nil {
		return fail(err)
	}
	mark(t0)

	// (9) After install: report done.
	t0 = time.Now()
	if err := callback(ctx, inst2, cb); err != nil {
		return fail(err)
	}
	mark(t0)
	res.total = time.Since(begin)
	return res
}

// hostClient is an HTTP client whose connections leave from ip, the
// host's own address: user-data is bound to the address that fetched
// the install script.
func hostClient(ip netip.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)), Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext:           d.DialContext,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   1,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
}

// get returns a small body (a script, user-data), read into buf.
func get(ctx context.Context, c *http.Client, url string, buf []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == len(buf) {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", url, len(buf))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", redact(url), resp.Status, buf[:n])
	}
	return buf[:n], nil
}

// download reads a large body with buf and returns its length, checked
// against Content-Length.
func download(ctx context.Context, c *http.Client, url string, buf []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var total int64
	for {
		n, err := resp.Body.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, fmt.Errorf("GET %s after %d bytes: %w", url, total, err)
		}
	}
	if resp.ContentLength >= 0 && total != resp.ContentLength {
		return total, fmt.Errorf("GET %s: %d bytes, Content-Length %d", url, total, resp.ContentLength)
	}
	return total, nil
}

func callback(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var v struct {
		State   string `json:"state"`
		Changed bool   `json:"changed"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST callback: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&v); err != nil {
		return fmt.Errorf("POST callback: %w", err)
	}
	if v.State != "installed" || !v.Changed {
		return fmt.Errorf("POST callback: state %q changed=%v, want installed/true", v.State, v.Changed)
	}
	return nil
}

// redact drops a token from a URL path before it goes into a report.
func redact(u string) string {
	for _, p := range []string{"/userdata/", "/callback/"} {
		if i := strings.Index(u, p); i >= 0 {
			return u[:i+len(p)] + "…"
		}
	}
	return u
}
