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
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
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

// client fetches one file at a time; its buffers are reused across transfers.
type client struct {
	cfg     *config
	rrq     []byte
	buf     []byte
	ack     [4]byte
	blk     int // negotiated for the last transfer
	win     int
	resends int
	got     int // bytes of the last transfer received in order
}

func newClient(cfg *config) *client {
	rrq := binary.BigEndian.AppendUint16(nil, opRRQ)
	rrq = append(append(rrq, cfg.file...), 0)
	rrq = append(rrq, "octet\x00"...)
	opt := func(name, value string) {
		rrq = append(append(rrq, name...), 0)
		rrq = append(append(rrq, value...), 0)
	}
	if cfg.tsize {
		opt("tsize", "0")
	}
	if cfg.blksize > 0 {
		opt("blksize", strconv.Itoa(cfg.blksize))
	}
	if cfg.windowsize > 0 {
		opt("windowsize", strconv.Itoa(cfg.windowsize))
	}
	return &client{cfg: cfg, rrq: rrq, buf: make([]byte, 4+max(512, cfg.blksize)+1)}
}

// fetch runs one transfer and reports how it ended.
func (c *client) fetch(end time.Time) (outcome, error) {
	c.blk, c.win, c.resends, c.got = 512, 1, 0, 0
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.cfg.bind, 0)))
	if err != nil {
		return failSocket, err
	}
	defer conn.Close()

	var (
		tid      netip.AddrPort // the server's transfer port, from its first packet
		last     = c.rrq        // what a timeout resends
		lastTo   = c.cfg.server
		expected = uint16(1) // next block wanted
		inWin    int         // blocks since the last ACK
		nakSent  bool        // an ACK for a gap was sent since the last progress
		tries    int
		sum      = sha256.New()
	)
	send := func(p []byte) error {
		last, lastTo = p, tid
		_, err := conn.WriteToUDPAddrPort(p, tid)
		return err
	}
	ackPkt := func(block uint16) []byte {
		binary.BigEndian.PutUint16(c.ack[:], opACK)
		binary.BigEndian.PutUint16(c.ack[2:], block)
		return c.ack[:]
	}
	abort := func() {
		if tid.IsValid() {
			conn.WriteToUDPAddrPort([]byte("\x00\x05\x00\x00deadline\x00"), tid)
		}
	}
	if _, err := conn.WriteToUDPAddrPort(c.rrq, c.cfg.server); err != nil {
		return failSocket, err
	}
	for {
		dl := time.Now().Add(c.cfg.timeout)
		if dl.After(end) {
			dl = end
		}
		conn.SetReadDeadline(dl)
		n, from, err := conn.ReadFromUDPAddrPort(c.buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return failSocket, err
			}
			if !time.Now().Before(end) {
				abort()
				return cut, nil
			}
			if tries++; tries > c.cfg.retries {
				abort()
				return failTimeout, fmt.Errorf("no answer after %d resends (block %d)", c.cfg.retries, expected)
			}
			c.resends++
			if _, err := conn.WriteToUDPAddrPort(last, lastTo); err != nil {
				return failSocket, err
			}
			continue
		}
		if n < 4 {
			continue
		}
		if !tid.IsValid() {
			// Only the server we asked may pick the transfer port: a fresh
			// socket can reuse the port of a transfer cut at the end of the
			// previous run, whose server may still be resending to it.
			// (Unmap: without -bind the socket is dual-stack and reports
			// IPv4 senders as ::ffff:a.b.c.d.)
			if from.Addr().Unmap() != c.cfg.server.Addr().Unmap() {
				continue
			}
			tid = from
		} else if from != tid {
			continue
		}
		switch binary.BigEndian.Uint16(c.buf) {
		case opERROR:
			msg, _, _ := bytes.Cut(c.buf[4:n], []byte{0})
			return failError, fmt.Errorf("ERROR %d: %s", binary.BigEndian.Uint16(c.buf[2:]), msg)
		case opOACK:
			if expected != 1 {
				continue
			}
			fields := strings.Split(string(c.buf[2:n]), "\x00")
			for i := 0; i+1 < len(fields); i += 2 {
				v, _ := strconv.Atoi(fields[i+1])
				switch strings.ToLower(fields[i]) {
				case "blksize":
					c.blk = v
				case "windowsize":
					c.win = v
				case "tsize":
					if v != c.cfg.wantLen {
						abort()
						return failMismatch, fmt.Errorf("tsize %d, want %d", v, c.cfg.wantLen)
					}
				}
			}
			if c.blk < 8 || c.blk > len(c.buf)-5 || c.win < 1 {
				abort()
				return failMismatch, fmt.Errorf("bad OACK %q", c.buf[2:n])
			}
			tries = 0
			if err := send(ackPkt(0)); err != nil {
				return failSocket, err
			}
		case opDATA:
			block := binary.BigEndian.Uint16(c.buf[2:])
			if block != expected {
				if block == expected-1 && inWin == 0 {
					// Our last ACK was lost and the server resent its
					// window: acknowledge it again.
					send(ackPkt(expected - 1))
				} else if expected-block > uint16(c.win) && !nakSent {
					// A gap (RFC 7440 section 4): ask for the window to
					// restart after the last block in order.
					nakSent = true
					inWin = 0
					send(ackPkt(expected - 1))
				}
				continue
			}
			payload := c.buf[4:n]
			sum.Write(payload)
			c.got += len(payload)
			tries, nakSent = 0, false
			expected++
			inWin++
			final := len(payload) < c.blk
			if final || inWin == c.win {
				inWin = 0
				if err := send(ackPkt(expected - 1)); err != nil {
					return failSocket, err
				}
			}
			if final {
				if c.got != c.cfg.wantLen || !bytes.Equal(sum.Sum(nil), c.cfg.wantSum[:]) {
					return failMismatch, fmt.Errorf("got %d bytes, want %d (or SHA-256 differs)", c.got, c.cfg.wantLen)
				}
				return okay, nil
			}
		}
	}
}
