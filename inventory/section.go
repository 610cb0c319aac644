package inventory

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Section is one file inside an installer image, read straight from the
// image's file descriptor. Unlike io.SectionReader it keeps the kernel's
// file offset as its position and exposes the descriptor (syscall.Conn),
// so that http.ServeContent's io.CopyN reaches net's sendfile path
// (net/sendfile.go: an *io.LimitedReader over a syscall.Conn), which on
// Linux sends from the descriptor's current offset. The bytes of a live
// root image then never pass through this process.
//
// The descriptor holds the whole image: a copy that hands the raw
// descriptor to sendfile must be bounded by an *io.LimitedReader, as
// io.CopyN and http.ServeContent do. io.Copy is bounded too, through
// WriteTo. A Section is not safe for concurrent use; open one per request.
type Section struct {
	f    *os.File
	base int64
	size int64
}

// NewSection returns the size bytes of f starting at base, positioned at
// their start. f stays owned by the caller.
func NewSection(f *os.File, base, size int64) (*Section, error) {
	if base < 0 || size < 0 {
		return nil, fmt.Errorf("section at %d of %d bytes: negative", base, size)
	}
	if _, err := f.Seek(base, io.SeekStart); err != nil {
		return nil, err
	}
	return &Section{f: f, base: base, size: size}, nil
}

// Size is the section's length in bytes.
func (s *Section) Size() int64 { return s.size }

// pos is the position within the section. It asks the kernel each time
// because sendfile moves the offset behind this type's back.
func (s *Section) pos() (int64, error) {
	abs, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	return abs - s.base, nil
}

// Read reads from the current position, never past the section's end.
func (s *Section) Read(p []byte) (int, error) {
	rel, err := s.pos()
	if err != nil {
		return 0, err
	}
	if rel >= s.size {
		return 0, io.EOF
	}
	if rel < 0 {
		return 0, errSectionOffset
	}
	if rest := s.size - rel; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.f.Read(p)
	if err == io.EOF && n == 0 {
		// The image is shorter than its directory claims (truncated
		// download): say so rather than end the body early in silence.
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

var errSectionOffset = errors.New("inventory: section file offset moved before the section")

// Seek sets the position within the section, as io.Seeker says. As with
// io.SectionReader, seeking past the end is allowed; reads there see EOF.
func (s *Section) Seek(offset int64, whence int) (int64, error) {
	var rel int64
	switch whence {
	case io.SeekStart:
		rel = offset
	case io.SeekCurrent:
		cur, err := s.pos()
		if err != nil {
			return 0, err
		}
		rel = cur + offset
	case io.SeekEnd:
		rel = s.size + offset
	default:
		return 0, fmt.Errorf("inventory: section seek: invalid whence %d", whence)
	}
	if rel < 0 {
		return 0, fmt.Errorf("inventory: section seek to %d: negative position", rel)
	}
	if _, err := s.f.Seek(s.base+rel, io.SeekStart); err != nil {
		return 0, err
	}
	return rel, nil
}

// SyscallConn exposes the image's descriptor for net's sendfile path.
// See the type's doc: only a bounded copy may use it.
func (s *Section) SyscallConn() (syscall.RawConn, error) { return s.f.SyscallConn() }

// WriteTo copies the rest of the section to w. It bounds the copy with an
// *io.LimitedReader so that a writer with ReadFrom (a TCP connection, an
// http.ResponseWriter) can sendfile without running into the bytes that
// follow the section in the image.
func (s *Section) WriteTo(w io.Writer) (int64, error) {
	rel, err := s.pos()
	if err != nil {
		return 0, err
	}
	if rel >= s.size {
		return 0, nil
	}
	if rel < 0 {
		return 0, errSectionOffset
	}
	return io.Copy(w, &io.LimitedReader{R: s, N: s.size - rel})
}
