package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/api"
	"github.com/stagehand-dev/stagehand/inventory"
)

// isoEnv is newEnv plus a profile "palette" read out of an installer image.
func isoEnv(t *testing.T) (e *env, iso string, kernel, rootfs []byte) {
	t.Helper()
	e = newEnv(t, nil)
	iso, kernel, _, rootfs = installerISO(t)
	b, _ := json.Marshal(map[string]any{"iso": iso, "userdata": baseUD})
	e.opJSON(http.MethodPut, "/profiles/palette", string(b), http.StatusOK, nil)
	return e, iso, kernel, rootfs
}

// net's sendfile path takes an *io.LimitedReader over a syscall.Conn and
// nothing else: whatever handleArtifact hands to ServeContent must be one,
// for plain files and for sections of an installer image.
func TestArtifactContentIsSyscallConn(t *testing.T) {
	e, _, _, _ := isoEnv(t)
	for _, name := range []string{"edge", "palette"} {
		p, err := e.store.Profile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, which := range []string{"kernel", "initrd"} {
			a, err := p.OpenArtifact(which)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, which, err)
			}
			c := api.ArtifactContentForTest(a)
			if _, ok := c.(syscall.Conn); !ok {
				t.Errorf("%s/%s: ServeContent gets a %T, not a syscall.Conn: no sendfile", name, which, c)
			}
			a.Close()
		}
	}
}

func TestISOArtifactRanges(t *testing.T) {
	e, _, kernel, rootfs := isoEnv(t)
	n := len(rootfs)
	for _, tc := range []struct {
		name, file, rng string
		status          int
		from, to        int // expected body is the artifact's [from:to]
	}{
		{"whole", "rootfs", "", http.StatusOK, 0, n},
		{"first byte", "rootfs", "bytes=0-0", http.StatusPartialContent, 0, 1},
		{"middle", "rootfs", "bytes=1000000-1000999", http.StatusPartialContent, 1000000, 1001000},
		{"last byte", "rootfs", fmt.Sprintf("bytes=%d-%d", n-1, n-1), http.StatusPartialContent, n - 1, n},
		{"open-ended tail", "rootfs", "bytes=3000000-", http.StatusPartialContent, 3000000, n},
		{"suffix", "rootfs", "bytes=-4097", http.StatusPartialContent, n - 4097, n},
		{"end past the size is clamped", "rootfs", fmt.Sprintf("bytes=%d-%d", n-10, n+1000), http.StatusPartialContent, n - 10, n},
		{"kernel middle", "kernel", "bytes=4096-8191", http.StatusPartialContent, 4096, 8192},
		{"start past the end", "rootfs", fmt.Sprintf("bytes=%d-", n), http.StatusRequestedRangeNotSatisfiable, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			art := rootfs
			if tc.file == "kernel" {
				art = kernel
			}
			hdr := map[string]string{}
			if tc.rng != "" {
				hdr["Range"] = tc.rng
			}
			r := e.request(http.MethodGet, "/artifacts/palette/"+tc.file, nil, hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if tc.status == http.StatusRequestedRangeNotSatisfiable {
				if r.header.Get("Content-Range") != "bytes */"+strconv.Itoa(len(art)) {
					t.Errorf("Content-Range %q", r.header.Get("Content-Range"))
				}
				return
			}
			want := art[tc.from:tc.to]
			if !bytes.Equal(r.body, want) || r.header.Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Fatalf("%d bytes (Content-Length %s), want the %d bytes at %d", len(r.body), r.header.Get("Content-Length"), len(want), tc.from)
			}
			if tc.status == http.StatusPartialContent {
				if cr := fmt.Sprintf("bytes %d-%d/%d", tc.from, tc.to-1, len(art)); r.header.Get("Content-Range") != cr {
					t.Errorf("Content-Range %q, want %q", r.header.Get("Content-Range"), cr)
				}
			}
			if r.header.Get("Last-Modified") == "" {
				t.Error("no Last-Modified: a resumed download could not use If-Range")
			}
		})
	}

	// Several ranges come back as multipart/byteranges, each part read
	// after a Seek of the section.
	r := e.request(http.MethodGet, "/artifacts/palette/rootfs", nil, map[string]string{"Range": "bytes=10-19,2000000-2000099,-5"})
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if r.status != http.StatusPartialContent || err != nil || mt != "multipart/byteranges" {
		t.Fatalf("multi-range: %d, %q, %v", r.status, r.header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	for _, want := range [][2]int{{10, 20}, {2000000, 2000100}, {n - 5, n}} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %v: %v", want, err)
		}
		got, _ := io.ReadAll(part)
		if !bytes.Equal(got, rootfs[want[0]:want[1]]) || part.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", want[0], want[1]-1, n) {
			t.Errorf("part %v: %d bytes, Content-Range %q", want, len(got), part.Header.Get("Content-Range"))
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("extra part: %v", err)
	}
}

// tracer is strace attached to every thread of this test process,
// writing one file per thread (so no line is split by another thread).
type tracer struct {
	cmd    *exec.Cmd
	prefix string
	logged chan struct{} // closed when strace's stderr is drained
}

// startTracer attaches strace -f to this process and returns once every
// thread that exists is traced; threads created later are followed.
func startTracer(t *testing.T, syscalls string) *tracer {
	t.Helper()
	bin, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace not found (install the Debian package strace): %v", err)
	}
	tr := &tracer{prefix: filepath.Join(t.TempDir(), "trace"), logged: make(chan struct{})}
	tr.cmd = exec.Command(bin, "-f", "-ff", "-y", "-s", "1", "-e", "trace="+syscalls, "-e", "signal=none",
		"-o", tr.prefix, "-p", strconv.Itoa(os.Getpid()))
	stderr, err := tr.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.stop() })
	// strace -f -p attaches every thread of the process, rescanning
	// /proc/PID/task until no new one appears, and only then reports
	// "Process N attached with M threads".
	attached := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "attached") {
				select {
				case attached <- true:
				default:
				}
			}
			t.Logf("strace: %s", sc.Text())
		}
		close(attached)
		close(tr.logged)
	}()
	select {
	case ok := <-attached:
		if !ok {
			t.Fatal("strace exited before attaching (is ptrace allowed here?)")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("strace did not attach in 20 s")
	}
	return tr
}

// stop detaches strace. Safe to call twice.
func (tr *tracer) stop() {
	if tr.cmd.Process == nil || tr.cmd.ProcessState != nil {
		return
	}
	tr.cmd.Process.Signal(os.Interrupt)
	<-tr.logged // Wait closes the pipe: drain it first
	tr.cmd.Wait()
}

// bytesBy sums, per file path, the bytes each traced call moved out of
// that file: sendfile's input descriptor, read's descriptor.
func (tr *tracer) bytesBy(t *testing.T) (sent, read map[string]int64) {
	t.Helper()
	files, err := filepath.Glob(tr.prefix + ".*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no trace files: %v", err)
	}
	sendRE := regexp.MustCompile(`^sendfile\(\d+<[^>]*>, \d+<([^>]+)>, .*\) = (\d+)$`)
	readRE := regexp.MustCompile(`^read\(\d+<([^>]+)>, .*\) = (\d+)$`)
	sent, read = map[string]int64{}, map[string]int64{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if m := sendRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseInt(m[2], 10, 64)
				sent[m[1]] += n
			} else if m := readRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseInt(m[2], 10, 64)
				read[m[1]] += n
			}
		}
	}
	return sent, read
}

// The whole chain — router, metrics middleware, ServeContent, net/http's
// response — must hand artifact bytes to sendfile(2), for plain files and
// for sections of an installer image alike. strace on this process counts
// the bytes each file gave to sendfile and to read. net/http reads the
// first 512 bytes of a body itself before it switches to ReadFrom (to
// sniff, golang.org/issue/5660), so each response may read that much.
func TestArtifactsUseSendfile(t *testing.T) {
	e, iso, kernel, rootfs := isoEnv(t)
	plain := filepath.Join(e.root, "artifacts", "vmlinuz")

	tr := startTracer(t, "sendfile,read")
	type fetch struct {
		path, rng string
		want      []byte
	}
	fetches := []fetch{
		{"/artifacts/edge/kernel", "", e.kernel},
		{"/artifacts/palette/rootfs", "", rootfs},
		{"/artifacts/palette/rootfs", "bytes=1000000-2999999", rootfs[1000000:3000000]},
		{"/artifacts/palette/kernel", "", kernel},
	}
	for _, f := range fetches {
		hdr := map[string]string{}
		if f.rng != "" {
			hdr["Range"] = f.rng
		}
		if r := e.request(http.MethodGet, f.path, nil, hdr); !bytes.Equal(r.body, f.want) {
			t.Fatalf("GET %s %s: %d, %d bytes, want %d", f.path, f.rng, r.status, len(r.body), len(f.want))
		}
	}
	tr.stop()
	sent, read := tr.bytesBy(t)
	t.Logf("sendfile bytes by file %v, read bytes by file %v", sent, read)

	for _, tc := range []struct {
		file      string
		responses int
		total     int64
	}{
		{plain, 1, int64(len(e.kernel))},
		{iso, 3, int64(len(rootfs) + 2000000 + len(kernel))},
	} {
		if sent[tc.file]+read[tc.file] != tc.total {
			t.Errorf("%s: %d bytes by sendfile + %d by read, want %d in all", tc.file, sent[tc.file], read[tc.file], tc.total)
		}
		if limit := int64(512 * tc.responses); read[tc.file] > limit {
			t.Errorf("%s: %d bytes went through read(2), more than net/http's sniff of 512 per response: no sendfile", tc.file, read[tc.file])
		}
	}
}

// BenchmarkArtifact serves an 8 MiB kernel over loopback, from a plain
// file and out of an installer image, to a client in this process that
// discards it. B/op stays in kilobytes: no artifact is read into memory.
//
//	go test -run '^$' -bench Artifact -benchmem ./api/
func BenchmarkArtifact(b *testing.B) {
	dir := b.TempDir()
	kernel := make([]byte, 8<<20)
	for i := range kernel {
		kernel[i] = byte(i * 7919 >> 3)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"boot/kernel", "boot/initrd", "rootfs.squashfs"} {
		if err := os.WriteFile(filepath.Join(tree, name), kernel, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "palette.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-o", iso, tree).CombinedOutput(); err != nil {
		b.Fatalf("xorriso (Debian package xorriso): %v\n%s", err, out)
	}
	st, err := inventory.Open(filepath.Join(dir, "data"), inventory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	plain := filepath.Join(tree, "boot")
	for _, p := range []inventory.Profile{
		{Name: "plain", Kernel: filepath.Join(plain, "kernel"), Initrd: filepath.Join(plain, "initrd"), UserData: baseUD},
		{Name: "iso", ISO: iso, UserData: baseUD},
	} {
		if err := st.PutProfile(p); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st}))
	defer srv.Close()
	client := srv.Client()
	for _, name := range []string{"plain", "iso"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(kernel)))
			for b.Loop() {
				r, err := client.Get(srv.URL + "/artifacts/" + name + "/kernel")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if err != nil || n != int64(len(kernel)) || r.StatusCode != http.StatusOK {
					b.Fatalf("%d, %d bytes, %v", r.StatusCode, n, err)
				}
			}
		})
	}
}
