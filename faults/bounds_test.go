package faults

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// tftpGet fetches file from a TFTP server the way a PXE ROM does: RRQ
// with blksize 1468, lock-step ACKs, the last packet resent after a second
// of silence, five times at most. pace is slept before each ACK; progress,
// when set, is stored the bytes received so far.
func tftpGet(addr, file string, pace time.Duration, progress *atomic.Int64) ([]byte, error) {
	c := &tftptest.Client{
		Options: []tftptest.Option{{Name: "blksize", Value: "1468"}, {Name: "tsize", Value: "0"}},
		Timeout: time.Second, Retries: 5, Pace: pace,
	}
	if progress != nil {
		c.OnData = func(_ int64, p []byte) { progress.Add(int64(len(p))) }
	}
	res, err := c.Get(addr, file)
	if err != nil {
		if res == nil {
			return nil, err
		}
		return res.Data, fmt.Errorf("after %d bytes: %w", res.Size, err)
	}
	return res.Data, nil
}

// writeBinary replaces one of the server's iPXE binaries (before start:
// the server indexes them once) with n random bytes.
func (s *server) writeBinary(name string, n int) []byte {
	s.t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(s.ipxeDir, name), b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return b
}

// gauges returns the server's goroutine and open-descriptor gauges.
func (s *server) gauges() (goroutines, fds int) {
	s.t.Helper()
	m := s.metrics()
	g, okG := m["stagehand_goroutines"]
	f, okF := m["stagehand_open_fds"]
	if !okG || !okF {
		s.t.Fatal("/metrics lacks stagehand_goroutines or stagehand_open_fds")
	}
	return int(g), int(f)
}

// metrics scrapes /metrics with the operator token: each sample by its
// name with labels as written, e.g. `x_total{reason="busy"}`.
func (s *server) metrics() map[string]float64 {
	s.t.Helper()
	tok, err := os.ReadFile(filepath.Join(s.dataDir, "api-token"))
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	// A transport of its own, so no connection of ours stays open in the
	// server between scrapes.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		s.t.Fatalf("/metrics: %v", err)
	}
	return m
}

// settles fails the test unless both gauges return to within margin of
// their values before the load, polling for up to 10 s.
func (s *server) settles(baseG, baseFD, margin int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, fd := s.gauges()
		if g <= baseG+margin && fd <= baseFD+margin {
			s.t.Logf("after the load: %d goroutines (%d before), %d fds (%d before)", g, baseG, fd, baseFD)
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("leak after the load: %d goroutines (%d before), %d fds (%d before)", g, baseG, fd, baseFD)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// peakRSS is the server's high-water resident set in KiB.
func (s *server) peakRSS() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int
			fmt.Sscanf(v, "%d", &kb)
			return kb
		}
	}
	return 0
}

// raiseNoFile lifts the soft descriptor limit to the hard one (the server
// inherits it) and fails the test if that is below need.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Max < need {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: this test needs %d descriptors (raise it with ulimit -Hn)", lim.Max, need)
	}
	if lim.Cur < need {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// SIGTERM while a host is fetching its iPXE binary over TFTP: the transfer
// in flight completes byte for byte and the process exits on its own
// within the drain bound.
func TestSIGTERMFinishesTFTP(t *testing.T) {
	s := newServer(t)
	want := s.writeBinary("snponly.efi", 4<<20)
	s.start()

	var got atomic.Int64
	type result struct {
		b   []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		// About 2 s for 4 MiB at one 1468-byte block per 0.5 ms.
		b, err := tftpGet(fmt.Sprintf("127.0.0.1:%d", s.tftpPort), "snponly.efi", 500*time.Microsecond, &got)
		res <- result{b, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < 256<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("transfer stuck at %d bytes before SIGTERM", got.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := time.Now()
	s.Signal(syscall.SIGTERM)
	atSignal := got.Load()

	var r result
	select {
	case r = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("TFTP transfer did not finish within 20 s of SIGTERM")
	}
	if r.err != nil || !bytes.Equal(r.b, want) {
		t.Fatalf("transfer cut by SIGTERM: got %d of %d bytes: %v", len(r.b), len(want), r.err)
	}
	select {
	case <-s.Done():
		if err := s.Err(); err != nil {
			t.Fatalf("server exit after SIGTERM: %v\n%s", err, s.Output())
		}
		t.Logf("SIGTERM at %d of %d bytes; transfer complete, server exited %v after SIGTERM",
			atSignal, len(want), time.Since(stopped).Round(10*time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("server still running 15 s after SIGTERM")
	}
	if atSignal >= int64(len(want)) {
		t.Fatal("the transfer had finished before SIGTERM: nothing was drained")
	}
	if !strings.Contains(s.Output(), "tftp: draining transfers") {
		t.Errorf("no drain logged:\n%s", lab.Tail(s.Output(), 20))
	}
}

// 500 hosts fetching undionly.kpxe at once, under the server's 512
// transfer cap: every one gets it byte for byte, and the server's
// goroutines and descriptors return to where they were.
func TestConcurrentTFTPTransfers(t *testing.T) {
	const n = 500
	raiseNoFile(t, 2*n+500)
	s := newServer(t)
	// The 500 "hosts" share 127.0.0.1, so the per-address cap is lifted;
	// TestTFTPFloodFromOneAddress tests it.
	s.args = []string{"--tftp-max-per-client", "0"}
	want := s.writeBinary("undionly.kpxe", 74213) // Debian's ipxe 1.21 undionly.kpxe
	s.start()
	baseG, baseFD := s.gauges()
	baseRSS := s.rss()

	addr := fmt.Sprintf("127.0.0.1:%d", s.tftpPort)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b, err := tftpGet(addr, "undionly.kpxe", 0, nil)
			if err == nil && !bytes.Equal(b, want) {
				err = fmt.Errorf("%d of %d bytes, content differs", len(b), len(want))
			}
			if err != nil {
				failed.Add(1)
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d concurrent TFTP transfers of %d bytes: %d failed, %v, server RSS %d KiB before, peak (VmHWM) %d KiB",
		n, len(want), failed.Load(), time.Since(began).Round(10*time.Millisecond), baseRSS, s.peakRSS())
	s.settles(baseG, baseFD, 5)
}

// 1000 machine clients at once, half with keep-alive and half without,
// each fetching the stage-1 script, its stage-2 script and a range of an
// 8 MiB artifact: all succeed, and the server's goroutines and
// descriptors return to where they were.
func TestConcurrentHTTPClients(t *testing.T) {
	const n = 1000
	raiseNoFile(t, 2*n+500)
	s := newServer(t)
	// The clients name MACs no DHCP exchange tied to their address, which
	// strict binding refuses (the binding is api's TestStage2Binding*).
	s.args = []string{"--mac-binding", "off"}
	s.start()
	s.addProfile("edge", 8<<20)
	pattern := []byte("0123456789abcdef")
	baseG, baseFD := s.gauges()
	baseRSS := s.rss()

	keep := &http.Transport{MaxIdleConnsPerHost: n}
	noKeep := &http.Transport{DisableKeepAlives: true}
	defer keep.CloseIdleConnections()
	clients := []*http.Client{
		{Timeout: 20 * time.Second, Transport: keep},
		{Timeout: 20 * time.Second, Transport: noKeep},
	}
	check := func(c *http.Client, i int) error {
		for _, path := range []string{"/boot.ipxe", fmt.Sprintf("/ipxe?mac=02:00:00:00:%02x:%02x", i>>8, i&0xff)} {
			resp, err := c.Get(s.url() + path)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("#!ipxe")) {
				return fmt.Errorf("%s: %s, %d bytes %.20q, %v", path, resp.Status, len(body), body, err)
			}
		}
		// A range starting anywhere in the file, as iPXE and curl resume.
		off := (i * 8191) % (8<<20 - 64<<10)
		req, _ := http.NewRequest(http.MethodGet, s.url()+"/artifacts/edge/kernel", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+64<<10-1))
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusPartialContent || len(body) != 64<<10 {
			return fmt.Errorf("range at %d: %s, %d bytes, %v", off, resp.Status, len(body), err)
		}
		for j, b := range body {
			if b != pattern[(off+j)%16] {
				return fmt.Errorf("range at %d: byte %d is %q", off, j, b)
			}
		}
		return nil
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := check(clients[i%2], i); err != nil {
				errs <- fmt.Errorf("client %d (keep-alive %v): %w", i, i%2 == 0, err)
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		if failed <= 10 {
			t.Error(err)
		}
	}
	t.Logf("%d concurrent HTTP clients (3 requests each, half keep-alive): %d failed, %v, server RSS %d KiB before, peak (VmHWM) %d KiB",
		n, failed, time.Since(began).Round(10*time.Millisecond), baseRSS, s.peakRSS())
	// The server keeps idle keep-alive connections for its IdleTimeout;
	// closing ours is what a finished installer does.
	keep.CloseIdleConnections()
	s.settles(baseG, baseFD, 5)
}
