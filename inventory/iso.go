package inventory

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stagehand-dev/stagehand/iso9660"
)

// Where the Palette Edge installer ISO keeps its netboot artifacts.
const (
	ISOKernel = "/boot/kernel"
	ISOInitrd = "/boot/initrd"
	ISORootFS = "/rootfs.squashfs"
)

// ISOCmdline is the documented Palette netboot command line; the
// placeholders are filled per attempt (ipxe.ExpandCmdline).
const ISOCmdline = "rd.neednet=1 ip=dhcp rd.cos.disable root=live:${rootfs_url} netboot install-mode config_url=${config_url} console=tty1"

// ApplyISODefaults fills an ISO profile's artifact paths and command
// line with the installer's defaults where the operator gave none.
func (p *Profile) ApplyISODefaults() {
	if p.ISO == "" {
		return
	}
	if p.Kernel == "" {
		p.Kernel = ISOKernel
	}
	if p.Initrd == "" {
		p.Initrd = ISOInitrd
	}
	if p.RootFS == "" {
		p.RootFS = ISORootFS
	}
	if p.Cmdline == "" {
		p.Cmdline = ISOCmdline
	}
}

// OpenISO opens an installer image. The caller closes the file.
func OpenISO(path string) (*os.File, *iso9660.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	im, err := iso9660.Open(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, im, nil
}

// validateISO checks that each artifact path exists inside the image,
// naming what the directory does hold when it does not: an operator
// with a different installer build needs to see the real names.
func (p *Profile) validateISO(add func(field, reason string)) {
	if !strings.HasPrefix(p.ISO, "/") {
		add("iso", fmt.Sprintf("%q is not an absolute path", p.ISO))
		return
	}
	f, im, err := OpenISO(p.ISO)
	if err != nil {
		add("iso", "cannot read the installer image: "+err.Error())
		return
	}
	defer f.Close()
	for _, a := range []struct{ field, path string }{{"kernel", p.Kernel}, {"initrd", p.Initrd}, {"rootfs", p.RootFS}} {
		if a.path == "" {
			continue
		}
		if _, err := im.Stat(a.path); err != nil {
			reason := fmt.Sprintf("%s is not in %s", a.path, p.ISO)
			dir := a.path[:strings.LastIndex(a.path, "/")+1]
			if ents, err := im.ReadDir(dir); err == nil {
				names := make([]string, 0, len(ents))
				for _, e := range ents {
					names = append(names, e.Name)
				}
				sort.Strings(names)
				if len(names) > 20 {
					names = append(names[:20], "…")
				}
				reason += fmt.Sprintf(" (%s holds: %s)", dir, strings.Join(names, ", "))
			}
			add(a.field, reason)
		}
	}
}

// ArtifactReader is an open artifact: a plain file, or a section of an
// installer image. Close releases the underlying file.
type ArtifactReader struct {
	// ReadSeeker is an *os.File or a *Section. Both implement
	// syscall.Conn, so http.ServeContent on it reaches sendfile(2):
	// serve this, not the ArtifactReader (whose embedding hides it).
	io.ReadSeeker
	Size int64
	// ModTime is the file's, or for a section the image file's: a
	// rebuilt image invalidates what clients cached from the old one.
	ModTime time.Time
	closer  io.Closer
	// File is set when the artifact is a whole plain file.
	File *os.File
}

// Close closes the underlying file.
func (a *ArtifactReader) Close() error { return a.closer.Close() }

// OpenArtifact opens one of a profile's artifacts ("kernel", "initrd",
// "rootfs") for serving.
func (p Profile) OpenArtifact(which string) (*ArtifactReader, error) {
	var path string
	switch which {
	case "kernel":
		path = p.Kernel
	case "initrd":
		path = p.Initrd
	case "rootfs":
		path = p.RootFS
	}
	if path == "" {
		return nil, fmt.Errorf("%w: profile %s has no artifact %q", ErrNotFound, p.Name, which)
	}
	if p.ISO == "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("%s is not a regular file", path)
		}
		return &ArtifactReader{ReadSeeker: f, Size: st.Size(), ModTime: st.ModTime(), closer: f, File: f}, nil
	}
	return openISOArtifact(p.ISO, path)
}

// isoExtents caches where artifacts lie inside installer images, so that
// a request for one does not parse the image's volume descriptor and
// directories again (a rack pulls the same three files thousands of
// times). An entry is keyed by the image's path and checked against its
// inode, size and modification time on every open: a rebuilt or replaced
// image is parsed afresh.
var isoExtents = extentCache{m: map[string]*imageExtents{}}

// maxCachedImages bounds the cache: profiles name a handful of images.
// Past it the cache is emptied and refilled, which costs one parse each.
const maxCachedImages = 64

type extentCache struct {
	mu sync.Mutex
	m  map[string]*imageExtents
}

type imageExtents struct {
	id    fileID
	files map[string]iso9660.File
}

// fileID tells one version of a file from another.
type fileID struct {
	ino, size int64
	mtime     time.Time
}

func idOf(st os.FileInfo) fileID {
	id := fileID{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(sys.Ino)
	}
	return id
}

// lookup returns the cached extent of name in the image at path, if the
// cache holds one for this version of the image.
func (c *extentCache) lookup(path string, id fileID, name string) (iso9660.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im := c.m[path]
	if im == nil || im.id != id {
		return iso9660.File{}, false
	}
	e, ok := im.files[name]
	return e, ok
}

func (c *extentCache) store(path string, id fileID, name string, e iso9660.File) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im := c.m[path]
	if im == nil || im.id != id {
		if len(c.m) >= maxCachedImages {
			clear(c.m)
		}
		im = &imageExtents{id: id, files: map[string]iso9660.File{}}
		c.m[path] = im
	}
	im.files[name] = e
}

// openISOArtifact opens the file at name inside the image at path.
func openISOArtifact(path, name string) (*ArtifactReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	id := idOf(st)
	e, ok := isoExtents.lookup(path, id, name)
	if !ok {
		im, err := iso9660.Open(f, st.Size())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if e, err = im.Stat(name); err != nil {
			f.Close()
			return nil, err
		}
		isoExtents.store(path, id, name, e)
	}
	a, err := isoArtifact(f, st, name, e)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func isoArtifact(f *os.File, st os.FileInfo, path string, e iso9660.File) (*ArtifactReader, error) {
	if e.IsDir {
		return nil, fmt.Errorf("%s: %s is a directory", f.Name(), path)
	}
	if e.Offset+e.Size > st.Size() {
		return nil, fmt.Errorf("%s: %s ends at byte %d, past the image's %d bytes", f.Name(), path, e.Offset+e.Size, st.Size())
	}
	sec, err := NewSection(f, e.Offset, e.Size)
	if err != nil {
		return nil, err
	}
	return &ArtifactReader{ReadSeeker: sec, Size: e.Size, ModTime: st.ModTime(), closer: f}, nil
}
