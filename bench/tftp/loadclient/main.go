// Command loadclient is the TFTP load generator behind bench/tftp/run.sh.
//
// N workers each loop RRQ → whole transfer → verify for a fixed duration,
// every transfer from a fresh UDP port as a real boot client would. Every
// transfer is checked against the reference file: length, and SHA-256 of
// the bytes received. A transfer fails when the server sends ERROR, when a
// packet is not answered after -retries resends of -timeout each, or when
// the bytes differ; failures are counted, never retried silently. Transfers
// still running when the duration ends are aborted with an ERROR to the
// server and reported as "cut", neither success nor failure.
//
// It prints one line of key=value pairs for run.sh to parse.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

type config struct {
	server     netip.AddrPort
	bind       netip.Addr
	file       string
	blksize    int // 0: send no blksize option
	windowsize int // 0: send no windowsize option
	tsize      bool
	timeout    time.Duration
	retries    int
	wantLen    int
	wantSum    [32]byte
}

// outcome of one transfer.
type outcome int

const (
	okay outcome = iota
	cut
	failTimeout
	failError
	failMismatch
	failSocket
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"ok", "cut", "fail_timeout", "fail_error", "fail_mismatch", "fail_socket"}

type workerStats struct {
	counts   [nOutcomes]int
	resends  int
	bytes    int64 // received in order, cut and failed transfers included
	lat      []time.Duration
	blksize  map[int]int
	window   map[int]int
	firstErr string
}

func main() {
	var (
		server  = flag.String("server", "", "server address, IP:port")
		bind    = flag.String("bind", "", "local IP to send from (default: any)")
		file    = flag.String("file", "", "file name to request")
		ref     = flag.String("ref", "", "local copy of the file, to verify length and SHA-256")
		conc    = flag.Int("c", 1, "concurrent clients")
		dur     = flag.Duration("d", 10*time.Second, "duration")
		blksize = flag.Int("blksize", 1468, "RFC 2348 blksize to ask for (0: none)")
		window  = flag.Int("windowsize", 0, "RFC 7440 windowsize to ask for (0: none)")
		tsize   = flag.Bool("tsize", true, "ask for RFC 2349 tsize")
		timeout = flag.Duration("timeout", time.Second, "per-packet timeout")
		retries = flag.Int("retries", 5, "resends per packet before the transfer fails")
	)
	flag.Parse()
	if err := run(*server, *bind, *file, *ref, *conc, *dur, *blksize, *window, *tsize, *timeout, *retries); err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(2)
	}
}

func run(server, bind, file, ref string, conc int, dur time.Duration, blksize, window int, tsize bool, timeout time.Duration, retries int) error {
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		return fmt.Errorf("-server: %w", err)
	}
	cfg := &config{server: ap, file: file, blksize: blksize, windowsize: window, tsize: tsize, timeout: timeout, retries: retries}
	if bind != "" {
		if cfg.bind, err = netip.ParseAddr(bind); err != nil {
			return fmt.Errorf("-bind: %w", err)
		}
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		return err
	}
	if file == "" || conc < 1 || dur <= 0 || timeout <= 0 || (blksize != 0 && blksize < 8) {
		return errors.New("need -file, -c >= 1, -d > 0, -timeout > 0, -blksize 0 or >= 8")
	}
	cfg.wantLen, cfg.wantSum = len(want), sha256.Sum256(want)

	start := time.Now()
	end := start.Add(dur)
	stats := make([]workerStats, conc)
	var wg sync.WaitGroup
	for i := range stats {
		wg.Add(1)
		go func(ws *workerStats) {
			defer wg.Done()
			ws.blksize, ws.window = map[int]int{}, map[int]int{}
			c := newClient(cfg)
			for time.Now().Before(end) {
				t0 := time.Now()
				o, err := c.fetch(end)
				ws.counts[o]++
				ws.resends += c.resends
				ws.bytes += int64(c.got)
				if o == okay {
					ws.lat = append(ws.lat, time.Since(t0))
					ws.blksize[c.blk]++
					ws.window[c.win]++
				} else if o != cut && ws.firstErr == "" && err != nil {
					ws.firstErr = err.Error()
				}
			}
		}(&stats[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	report(os.Stdout, stats, elapsed, dur, cfg.wantLen)
	return nil
}

func report(w *os.File, stats []workerStats, elapsed, dur time.Duration, size int) {
	var total workerStats
	total.blksize, total.window = map[int]int{}, map[int]int{}
	for _, ws := range stats {
		for i, n := range ws.counts {
			total.counts[i] += n
		}
		total.resends += ws.resends
		total.bytes += ws.bytes
		total.lat = append(total.lat, ws.lat...)
		for k, v := range ws.blksize {
			total.blksize[k] += v
		}
		for k, v := range ws.window {
			total.window[k] += v
		}
		if total.firstErr == "" {
			total.firstErr = ws.firstErr
		}
	}
	slices.Sort(total.lat)
	pct := func(q float64) float64 {
		if len(total.lat) == 0 {
			return 0
		}
		return float64(total.lat[int(q*float64(len(total.lat)-1))]) / 1e6
	}
	ok := total.counts[okay]
	fail := 0
	for o := failTimeout; o < nOutcomes; o++ {
		fail += total.counts[o]
	}
	secs := dur.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "ok=%d fail=%d", ok, fail)
	for o := cut; o < nOutcomes; o++ {
		fmt.Fprintf(&b, " %s=%d", outcomeNames[o], total.counts[o])
	}
	// mbps and equiv count every byte received in order, so transfers cut
	// at the end still count for what they delivered: with 200 clients
	// and a 1 MB file a transfer can take longer than a short run.
	fmt.Fprintf(&b, " resends=%d secs=%.2f tps=%.1f bytes=%d equiv=%.1f mbps=%.1f p50ms=%.2f p99ms=%.2f blksize=%s windowsize=%s",
		total.resends, elapsed.Seconds(), float64(ok)/secs, total.bytes, float64(total.bytes)/float64(size),
		float64(total.bytes)/secs/1e6, pct(0.5), pct(0.99), keys(total.blksize), keys(total.window))
	if total.firstErr != "" {
		fmt.Fprintf(&b, " first_error=%q", total.firstErr)
	}
	fmt.Fprintln(w, b.String())
}

// keys lists the negotiated values seen, e.g. "1468" or "1,4".
func keys(m map[int]int) string {
	if len(m) == 0 {
		return "-"
	}
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var s []string
	for _, k := range ks {
		s = append(s, strconv.Itoa(k))
	}
	return strings.Join(s, ",")
}

// client fetches one file at a time with the shared test client
// (tftp/tftptest), whose buffers are reused across transfers.
type client struct {
	cfg     *config
	tc      tftptest.Client
	sum     hash.Hash
	blk     int // negotiated for the last transfer
	win     int
	resends int
	got     int // bytes of the last transfer received in order
}

func newClient(cfg *config) *client {
	c := &client{cfg: cfg, sum: sha256.New()}
	var opts []tftptest.Option
	if cfg.tsize {
		opts = append(opts, tftptest.Option{Name: "tsize", Value: "0"})
	}
	if cfg.blksize > 0 {
		opts = append(opts, tftptest.Option{Name: "blksize", Value: strconv.Itoa(cfg.blksize)})
	}
	if cfg.windowsize > 0 {
		opts = append(opts, tftptest.Option{Name: "windowsize", Value: strconv.Itoa(cfg.windowsize)})
	}
	c.tc = tftptest.Client{Options: opts, Timeout: cfg.timeout, Retries: cfg.retries, Discard: true,
		OnData: func(_ int64, p []byte) { c.sum.Write(p) }}
	if cfg.bind.IsValid() {
		c.tc.Local = net.IP(cfg.bind.AsSlice())
	}
	return c
}

// fetch runs one transfer and reports how it ended. A transfer still
// running at end is abandoned with an ERROR to the server ("cut").
func (c *client) fetch(end time.Time) (outcome, error) {
	c.sum.Reset()
	c.tc.Deadline = end
	res, err := c.tc.Get(c.cfg.server.String(), c.cfg.file)
	c.blk, c.win, c.resends, c.got = 512, 1, 0, 0
	if res != nil {
		c.blk, c.win, c.resends, c.got = res.Blksize, res.Window, res.Resends, res.Size
	}
	var re *tftptest.RemoteError
	switch {
	case errors.Is(err, tftptest.ErrDeadline):
		return cut, nil
	case errors.Is(err, tftptest.ErrNoAnswer):
		return failTimeout, err
	case errors.As(err, &re):
		return failError, fmt.Errorf("ERROR %d: %s", re.Code, re.Msg)
	case errors.Is(err, tftptest.ErrMismatch):
		return failMismatch, err
	case err != nil:
		return failSocket, err
	}
	if c.got != c.cfg.wantLen || !bytes.Equal(c.sum.Sum(nil), c.cfg.wantSum[:]) {
		return failMismatch, fmt.Errorf("got %d bytes, want %d (or SHA-256 differs)", c.got, c.cfg.wantLen)
	}
	return okay, nil
}
