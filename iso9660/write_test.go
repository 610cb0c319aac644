package iso9660

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func seedFiles() []WriteFile {
	mod := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return []WriteFile{
		{Name: "user-data", Data: []byte("#cloud-config\nstylus:\n  site:\n    paletteEndpoint: api.example.com\n"), ModTime: mod},
		{Name: "meta-data", Data: []byte("instance-id: host-aa-bb\nlocal-hostname: edge-1\n"), ModTime: mod},
		{Name: "network-config", Data: randomBytes(6, 3*sectorSize+1)},
		{Name: "user-data-extra", Data: []byte("second name that maps to USER_DAT\n")},
		{Name: "empty", Data: nil},
	}
}

func writeImage(t *testing.T, vol string, files []WriteFile) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, vol, files); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%sectorSize != 0 {
		t.Fatalf("image of %d bytes is not whole sectors", buf.Len())
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes()
}

func TestWriteRoundTrip(t *testing.T) {
	files := seedFiles()
	_, img := writeImage(t, "cidata", files)
	r := bytes.NewReader(img)
	im, err := Open(r, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.VolumeID() != "cidata" || !im.rr {
		t.Errorf("VolumeID %q rock ridge %v, want cidata with Rock Ridge", im.VolumeID(), im.rr)
	}
	for _, f := range files {
		fi, err := im.Stat("/" + f.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(fi.Section(r))
		if fi.Name != f.Name || !bytes.Equal(got, f.Data) {
			t.Errorf("%s: read back %q %d bytes, want %d", f.Name, fi.Name, len(got), len(f.Data))
		}
		if want := fileTime(f.ModTime); !fi.ModTime.Equal(want) {
			t.Errorf("%s: ModTime %v, want %v", f.Name, fi.ModTime, want)
		}
	}
	list, err := im.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if want := []string{"empty", "meta-data", "network-config", "user-data", "user-data-extra"}; !slices.Equal(names, want) {
		t.Errorf("ReadDir(/) = %q, want %q", names, want)
	}

	// The same input makes the same bytes.
	var again bytes.Buffer
	if err := Write(&again, "cidata", files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), img) {
		t.Error("two writes of the same files differ")
	}
}

// TestWriteManyFiles spreads the root directory over several sectors.
func TestWriteManyFiles(t *testing.T) {
	var files []WriteFile
	for i := range 150 {
		files = append(files, WriteFile{Name: fmt.Sprintf("file-with-a-long-name-%03d.yaml", i), Data: []byte(fmt.Sprint(i))})
	}
	path, img := writeImage(t, "MANY", files)
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.root.size <= sectorSize {
		t.Fatalf("root directory is %d bytes, want several sectors", im.root.size)
	}
	list, err := im.ReadDir("/")
	if err != nil || len(list) != len(files) {
		t.Fatalf("ReadDir(/) = %d entries, %v; want %d", len(list), err, len(files))
	}
	out := run(t, tool(t, "isoinfo", "genisoimage"), "-R", "-f", "-i", path)
	if n := strings.Count(string(out), "/file-with-a-long-name-"); n != len(files) {
		t.Errorf("isoinfo -R -f lists %d files, want %d:\n%s", n, len(files), out)
	}
}

// TestWriteReadByTools checks the written image with xorriso, isoinfo and
// blkid: the readers cloud-init's NoCloud datasource relies on look for the
// label "cidata" and the Rock Ridge names.
func TestWriteReadByTools(t *testing.T) {
	xorriso := tool(t, "xorriso", "xorriso")
	isoinfo := tool(t, "isoinfo", "genisoimage")
	blkid := tool(t, "blkid", "util-linux")
	files := seedFiles()
	path, _ := writeImage(t, "cidata", files)

	out := string(run(t, isoinfo, "-R", "-l", "-i", path))
	for _, f := range files {
		if !strings.Contains(out, " "+f.Name+" \n") && !strings.HasSuffix(strings.TrimSpace(out), " "+f.Name) {
			t.Errorf("isoinfo -R -l does not list %s:\n%s", f.Name, out)
		}
	}
	// Without Rock Ridge, the level-1 names: unique 8.3 identifiers.
	plain := string(run(t, isoinfo, "-l", "-i", path))
	for _, id := range []string{"USER_DAT.;1", "USER_D~1.;1", "META_DAT.;1", "NETWORK_.;1", "EMPTY.;1"} {
		if !strings.Contains(plain, id) {
			t.Errorf("isoinfo -l does not list %s:\n%s", id, plain)
		}
	}
	if desc := string(run(t, isoinfo, "-d", "-i", path)); !strings.Contains(desc, "Volume id: cidata") || !strings.Contains(desc, "Rock Ridge signatures version 1 found") {
		t.Errorf("isoinfo -d:\n%s", desc)
	}

	found := string(run(t, xorriso, "-indev", path, "-find", "/", "-type", "f"))
	for _, f := range files {
		if !strings.Contains(found, "'/"+f.Name+"'") {
			t.Errorf("xorriso -find does not list %s:\n%s", f.Name, found)
		}
	}
	dir := t.TempDir()
	for _, f := range files {
		dst := filepath.Join(dir, f.Name)
		run(t, xorriso, "-osirrox", "on", "-indev", path, "-extract", "/"+f.Name, dst)
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("xorriso -extract /%s: %d bytes, %v; want the %d written", f.Name, len(got), err, len(f.Data))
		}
	}

	id := string(run(t, blkid, "-p", "-o", "udev", path))
	if !strings.Contains(id, "ID_FS_LABEL=cidata\n") || !strings.Contains(id, "ID_FS_TYPE=iso9660\n") {
		t.Errorf("blkid -p -o udev:\n%s", id)
	}
}

func TestWriteRefuses(t *testing.T) {
	ok := []WriteFile{{Name: "user-data", Data: []byte("x")}}
	cases := []struct {
		name  string
		vol   string
		files []WriteFile
		want  string
	}{
		{"empty volume ID", "", ok, "volume ID"},
		{"long volume ID", strings.Repeat("v", 33), ok, "volume ID"},
		{"control byte in volume ID", "ci\ndata", ok, "volume ID"},
		{"empty name", "cidata", []WriteFile{{Name: ""}}, "not a name"},
		{"dot-dot", "cidata", []WriteFile{{Name: ".."}}, "not a name"},
		{"slash", "cidata", []WriteFile{{Name: "a/b"}}, "'/'"},
		{"NUL", "cidata", []WriteFile{{Name: "a\x00b"}}, "NUL"},
		{"not UTF-8", "cidata", []WriteFile{{Name: "a\xffb"}}, "UTF-8"},
		{"too long", "cidata", []WriteFile{{Name: strings.Repeat("n", maxWriteName+1)}}, "longer"},
		{"twice", "cidata", []WriteFile{{Name: "x"}, {Name: "x"}}, "twice"},
		{"too many", "cidata", make([]WriteFile, maxWriteFiles+1), "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, c.vol, c.files)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Write = %v, want an error about %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

func TestWriteLongestName(t *testing.T) {
	name := strings.Repeat("n", maxWriteName)
	_, img := writeImage(t, "cidata", []WriteFile{{Name: name, Data: []byte("z")}})
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := im.Stat("/" + name); err != nil || fi.Size != 1 {
		t.Fatalf("Stat of the %d-byte name = %+v, %v", len(name), fi, err)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > 40000 {
		return 0, io.ErrShortWrite
	}
	w.n += len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	err := Write(&failWriter{}, "cidata", []WriteFile{{Name: "big", Data: make([]byte, 1<<20)}})
	if err == nil || !strings.Contains(err.Error(), "short write") {
		t.Fatalf("Write to a failing writer = %v, want the writer's error", err)
	}
}
