package faults

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// slowReader reads at most rate bytes per second from r.
type slowReader struct {
	r    io.Reader
	rate int
}

func (s slowReader) Read(p []byte) (int, error) {
	if len(p) > s.rate/100 {
		p = p[:s.rate/100]
	}
	time.Sleep(10 * time.Millisecond)
	// A whole chunk per pause: the network may hand over less per Read,
	// and pausing per Read would make the rate depend on the load.
	n, err := io.ReadFull(s.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// SIGTERM while an installer is downloading its kernel: the download in
// flight completes byte for byte, new work is refused, and the process
// exits on its own within the shutdown bound.
func TestSIGTERMFinishesDownloads(t *testing.T) {
	s := newServer(t)
	s.start()
	kernel := s.addProfile("edge", 32<<20)
	want, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(s.url() + "/artifacts/edge/kernel")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, slowReader{resp.Body, 32 << 20}) // about 1 s for 32 MiB
		got <- b.Bytes()
	}()
	time.Sleep(300 * time.Millisecond)
	stopped := time.Now()
	s.Signal(syscall.SIGTERM)

	select {
	case b := <-got:
		if sha256.Sum256(b) != sha256.Sum256(want) {
			t.Fatalf("download cut by SIGTERM: got %d of %d bytes", len(b), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("download did not finish within 20 s of SIGTERM")
	}
	select {
	case <-s.Done():
		if err := s.Err(); err != nil {
			t.Fatalf("server exit after SIGTERM: %v\n%s", err, s.Output())
		}
		t.Logf("server exited %v after SIGTERM, with the download complete", time.Since(stopped).Round(10*time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("server still running 15 s after SIGTERM")
	}
	// The harness holds the port like a socket unit: let go of it, and
	// nothing (no copy the server handed a child) may answer there.
	s.release()
	if _, err := http.Get(s.url() + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}
