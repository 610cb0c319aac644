package inventory

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// sectionFile writes head, body and tail bytes to a file and returns it
// open with a Section over body. The tail is there so that a copy which
// runs past the section shows up as extra bytes.
func sectionFile(t *testing.T, head, body, tail int) (*os.File, *Section, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, head+body+tail)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	p := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s, err := NewSection(f, int64(head), int64(body))
	if err != nil {
		t.Fatal(err)
	}
	return f, s, data[head : head+body]
}

func TestSectionSeekRead(t *testing.T) {
	const size = 5000
	for _, tc := range []struct {
		name    string
		seeks   [][2]int64 // offset, whence, applied in order
		wantPos int64
		read    int
		want    [2]int // range of the body expected; empty means EOF
	}{
		{"start", nil, 0, 100, [2]int{0, 100}},
		{"absolute", [][2]int64{{1234, io.SeekStart}}, 1234, 10, [2]int{1234, 1244}},
		{"relative", [][2]int64{{1000, io.SeekStart}, {-10, io.SeekCurrent}}, 990, 20, [2]int{990, 1010}},
		{"from the end", [][2]int64{{-16, io.SeekEnd}}, size - 16, 100, [2]int{size - 16, size}},
		{"read stops at the end", [][2]int64{{size - 3, io.SeekStart}}, size - 3, 4096, [2]int{size - 3, size}},
		{"at the end", [][2]int64{{0, io.SeekEnd}}, size, 10, [2]int{}},
		{"past the end", [][2]int64{{size + 50, io.SeekStart}}, size + 50, 10, [2]int{}},
		{"size then rewind, as ServeContent does", [][2]int64{{0, io.SeekEnd}, {0, io.SeekStart}}, 0, 8, [2]int{0, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s, body := sectionFile(t, 3000, size, 1000)
			var pos int64
			for _, sk := range tc.seeks {
				var err error
				if pos, err = s.Seek(sk[0], int(sk[1])); err != nil {
					t.Fatalf("Seek(%d, %d): %v", sk[0], sk[1], err)
				}
			}
			if pos != tc.wantPos {
				t.Fatalf("position %d, want %d", pos, tc.wantPos)
			}
			buf := make([]byte, tc.read)
			n, err := s.Read(buf)
			want := body[tc.want[0]:tc.want[1]]
			if len(want) == 0 {
				if n != 0 || err != io.EOF {
					t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
				}
				return
			}
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("Read = %d, %v; want the %d bytes at %d", n, err, len(want), tc.want[0])
			}
		})
	}
}

func TestSectionSeekRejected(t *testing.T) {
	_, s, _ := sectionFile(t, 10, 100, 10)
	if _, err := s.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek to -1 accepted")
	}
	if _, err := s.Seek(-101, io.SeekEnd); err == nil {
		t.Error("Seek before the start from the end accepted")
	}
	if _, err := s.Seek(0, 7); err == nil {
		t.Error("bad whence accepted")
	}
	if _, err := NewSection(os.Stdin, -1, 10); err == nil {
		t.Error("negative base accepted")
	}
}

// A directory that claims more bytes than the image holds must not end a
// response early and silently.
func TestSectionTruncatedImage(t *testing.T) {
	f, _, body := sectionFile(t, 100, 1000, 0)
	s, err := NewSection(f, 100, 2000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, body) {
		t.Fatalf("ReadAll = %d bytes, %v; want the 1000 bytes there are and ErrUnexpectedEOF", len(got), err)
	}
}

// tcpPair returns the sending end of a loopback TCP connection and a
// channel that yields everything the other end received once the sender
// closes.
func tcpPair(t *testing.T) (*net.TCPConn, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			got <- nil
			return
		}
		accepted <- c
		b, _ := io.ReadAll(c)
		c.Close()
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if <-accepted == nil {
		t.Fatal("accept failed")
	}
	return c.(*net.TCPConn), got
}

// Over a real socket, the copies http.ServeContent and io.Copy make take
// net's sendfile path (the Section is a syscall.Conn under a
// LimitedReader); whatever path they take, they must send exactly the
// section's bytes and leave the position after them.
func TestSectionCopyToSocket(t *testing.T) {
	const size = 200 << 10
	for _, tc := range []struct {
		name  string
		start int64
		n     int64 // -1: io.Copy, unbounded
		want  [2]int
	}{
		{"CopyN from the middle", 12345, 50000, [2]int{12345, 62345}},
		{"CopyN of all", 0, size, [2]int{0, size}},
		{"Copy stops at the section end", 100000, -1, [2]int{100000, size}},
		{"Copy from the end sends nothing", size, -1, [2]int{size, size}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, s, body := sectionFile(t, 7000, size, 64<<10)
			conn, got := tcpPair(t)
			if _, err := s.Seek(tc.start, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			var (
				n   int64
				err error
			)
			if tc.n < 0 {
				n, err = io.Copy(conn, s)
			} else {
				n, err = io.CopyN(conn, s, tc.n)
			}
			conn.Close()
			want := body[tc.want[0]:tc.want[1]]
			if err != nil || n != int64(len(want)) {
				t.Fatalf("copied %d, %v; want %d", n, err, len(want))
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("peer received %d bytes, want the %d bytes at %d", len(b), len(want), tc.want[0])
			}
			if pos, err := s.Seek(0, io.SeekCurrent); err != nil || pos != int64(tc.want[1]) {
				t.Fatalf("position after the copy %d, %v; want %d", pos, err, tc.want[1])
			}
		})
	}
}

// http.ServeContent reaches sendfile only if what it copies from is a
// syscall.Conn: both kinds of artifact must be.
func TestOpenArtifactIsSyscallConn(t *testing.T) {
	iso, files := buildISO(t)
	plain := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(plain, files["boot/kernel"], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    Profile
	}{
		{"plain file", Profile{Name: "plain", Kernel: plain}},
		{"installer image", Profile{Name: "iso", ISO: iso, Kernel: ISOKernel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.p.OpenArtifact("kernel")
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if _, ok := a.ReadSeeker.(syscall.Conn); !ok {
				t.Fatalf("%T is not a syscall.Conn: its bytes would be copied through user space", a.ReadSeeker)
			}
			if a.ModTime.IsZero() {
				t.Error("no ModTime: If-Modified-Since and If-Range would never match")
			}
			got, err := io.ReadAll(a.ReadSeeker)
			if err != nil || !bytes.Equal(got, files["boot/kernel"]) || a.Size != int64(len(got)) {
				t.Fatalf("read %d bytes (Size %d), %v", len(got), a.Size, err)
			}
		})
	}
}
