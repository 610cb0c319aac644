package tftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
)

// File is an open file being served. Transfers read it with ReadAt only, so
// one File may back concurrent reads; *os.File satisfies it.
type File interface {
	io.ReaderAt
	io.Closer
}

// Handler opens files for reading. Implementations must be safe for
// concurrent use.
//
// Open returns the file named by a read request and its size in bytes
// (size must be >= 0 and must not change during the transfer). name is the
// raw filename from the packet: at most 255 bytes, never empty, never
// containing NUL, otherwise unvalidated. remote is the client's address, for
// logging and policy. An error matching fs.ErrNotExist is answered with
// ERROR 1 (file not found), fs.ErrPermission with ERROR 2 (access
// violation); any other error with ERROR 0 and a generic message, so
// internal details never reach the wire.
type Handler interface {
	Open(name string, remote net.Addr) (f File, size int64, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(name string, remote net.Addr) (File, int64, error)

// Open calls h.
func (h HandlerFunc) Open(name string, remote net.Addr) (File, int64, error) {
	return h(name, remote)
}

// Dir serves regular files under the directory it names.
//
// A leading "/" is stripped (PXE firmware often sends "/undionly.kpxe"), so
// "/etc/passwd" means "etc/passwd" under the root. Names with a ".."
// element or a NUL are refused with fs.ErrPermission; symlinks are followed only while they stay inside the
// root (os.Root enforces this per path element). Directories, devices and
// FIFOs are reported as not found. The root directory is opened per request,
// so it may be created or replaced while the server runs.
type Dir string

// Open implements Handler.
func (d Dir) Open(name string, _ net.Addr) (File, int64, error) {
	rel, err := cleanName(name)
	if err != nil {
		return nil, 0, err
	}
	root, err := os.OpenRoot(string(d))
	if err != nil {
		return nil, 0, fmt.Errorf("tftp: open root: %w", err)
	}
	defer root.Close()
	// O_NONBLOCK keeps a FIFO planted in the root from blocking the open
	// forever; it has no effect on regular files.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, err
		}
		// os.Root reports escapes ("path escapes from parent") and symlink
		// loops with unexported errors; all of them are access violations.
		return nil, 0, fmt.Errorf("%w: %w", fs.ErrPermission, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("tftp: %s is not a regular file: %w", rel, fs.ErrNotExist)
	}
	return f, st.Size(), nil
}

// cleanName turns a request filename into a path relative to the root,
// refusing anything that names a parent.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("tftp: NUL in filename: %w", fs.ErrPermission)
	}
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return "", fmt.Errorf("tftp: empty filename: %w", fs.ErrNotExist)
	}
	for elem := range strings.SplitSeq(rel, "/") {
		if elem == ".." {
			return "", fmt.Errorf("tftp: %q leaves the root: %w", name, fs.ErrPermission)
		}
	}
	return rel, nil
}
