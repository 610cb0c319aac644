package iso9660

import (
	"errors"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	valid := dirRecord([]byte("KERNEL.;1"), 40, 3<<20, 0, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), []byte("XX"))
	even := dirRecord([]byte("AB"), 41, 7, flagDir|flagHidden, time.Unix(0, 0), []byte("NM\x05\x01\x00"))
	cases := []struct {
		name      string
		b         []byte
		wantErr   bool
		wantIdent string
		wantSU    string
		block     uint32
		size      uint32
		flags     byte
	}{
		{name: "file", b: valid, wantIdent: "KERNEL.;1", wantSU: "XX", block: 40, size: 3 << 20},
		{name: "even identifier is padded", b: even, wantIdent: "AB", wantSU: "NM\x05\x01\x00\x00", block: 41, size: 7, flags: flagDir | flagHidden},
		{name: "empty", b: nil, wantErr: true},
		{name: "length below minimum", b: append([]byte{33}, valid[1:]...), wantErr: true},
		{name: "length past sector end", b: valid[:len(valid)-1], wantErr: true},
		{name: "zero identifier length", b: func() []byte { b := clone(valid); b[32] = 0; return b }(), wantErr: true},
		{name: "identifier past record", b: func() []byte { b := clone(valid); b[32] = 200; return b }(), wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseRecord(c.b)
			if c.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.ident) != c.wantIdent || string(r.sysUse) != c.wantSU || r.block != c.block || r.size != c.size || r.flags != c.flags || r.length != len(c.b) {
				t.Errorf("got ident %q su %q block %d size %d flags %#x len %d", r.ident, r.sysUse, r.block, r.size, r.flags, r.length)
			}
		})
	}
	r, _ := parseRecord(valid)
	if want := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC); !r.recorded.Equal(want) {
		t.Errorf("recorded = %v, want %v", r.recorded, want)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func TestLevelOneName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"KERNEL.;1", "KERNEL"},
		{"KERNEL;1", "KERNEL"},
		{"INITRD.IMG;1", "INITRD.IMG"},
		{"ROOTFS.SQU;12", "ROOTFS.SQU"},
		{"BOOT", "BOOT"},   // directories carry no version
		{"A.B;X", "A.B;X"}, // not a version: kept
		{".", "."},
		{"NAME.", "NAME"},
	}
	for _, c := range cases {
		if got := levelOneName([]byte(c.in)); got != c.want {
			t.Errorf("levelOneName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestJolietName(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{[]byte{0, 'k', 0, 'e', 0, 'r', 0, 'n', 0, 'e', 0, 'l', 0, ';', 0, '1'}, "kernel"},
		{[]byte{0, 'b', 0, 'o', 0, 'o', 0, 't'}, "boot"},
		{[]byte{0x00, 0xe9, 0x00, 't', 0x00, 0xe9}, "été"},
		{[]byte{0xd8, 0x3d, 0xde, 0x00}, "\U0001F600"}, // surrogate pair
		{[]byte{0, 'a', 0}, "a"},                       // odd trailing byte dropped
	}
	for _, c := range cases {
		if got := jolietName(c.in); got != c.want {
			t.Errorf("jolietName(% x) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRecordTime(t *testing.T) {
	cases := []struct {
		in   []byte
		want time.Time
	}{
		{[]byte{124, 1, 2, 3, 4, 5, 0}, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{[]byte{124, 1, 2, 3, 4, 5, 8}, time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC)}, // GMT+2
		{[]byte{124, 1, 2, 3, 4, 5, 0xf8}, time.Date(2024, 1, 2, 5, 4, 5, 0, time.UTC)},
		{[]byte{124, 0, 2, 3, 4, 5, 0}, time.Time{}},  // month 0
		{[]byte{124, 13, 2, 3, 4, 5, 0}, time.Time{}}, // month 13
		{[]byte{124, 1, 2, 24, 4, 5, 0}, time.Time{}},
		{[]byte{0, 0, 0, 0, 0, 0, 0}, time.Time{}},
		{[]byte{1, 2}, time.Time{}},
	}
	for _, c := range cases {
		if got := recordTime(c.in); !got.Equal(c.want) || got.IsZero() != c.want.IsZero() {
			t.Errorf("recordTime(% x) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseSUSP(t *testing.T) {
	ce := make([]byte, 24)
	putBoth32(ce, 30)
	putBoth32(ce[8:], 100)
	putBoth32(ce[16:], 50)
	cl := make([]byte, 8)
	putBoth32(cl, 77)
	cat := func(es ...[]byte) []byte {
		var b []byte
		for _, e := range es {
			b = append(b, e...)
		}
		return b
	}
	cases := []struct {
		name     string
		area     []byte
		wantName string
		hasName  bool
		wantCE   *continuation
		child    uint32
		reloc    bool
	}{
		{name: "one NM", area: cat(px(modeFile, 1), susp("NM", []byte("\x00user-data"))), wantName: "user-data", hasName: true},
		{name: "NM continued", area: cat(susp("NM", []byte("\x01user-")), susp("TF", []byte{0}), susp("NM", []byte("\x00data")), susp("NM", []byte("\x00ignored"))), wantName: "user-data", hasName: true},
		{name: "NM current and parent ignored", area: cat(susp("NM", []byte{2}), susp("NM", []byte{4})), hasName: false},
		{name: "CE", area: cat(susp("NM", []byte("\x01a")), susp("CE", ce)), wantName: "a", hasName: true, wantCE: &continuation{30, 100, 50}},
		{name: "ST ends the area", area: cat(susp("ST", nil), susp("NM", []byte("\x00x"))), hasName: false},
		{name: "length past the area", area: cat(susp("NM", []byte("\x00ok")), []byte{'N', 'M', 200, 1, 0}), wantName: "ok", hasName: true},
		{name: "length below header", area: []byte{'N', 'M', 2, 1, 0, 'x'}, hasName: false},
		{name: "padding byte", area: cat(susp("NM", []byte("\x00a")), []byte{0}), wantName: "a", hasName: true},
		{name: "CL and RE", area: cat(susp("CL", cl), susp("RE", nil)), child: 77, reloc: true},
		{name: "short CE ignored", area: susp("CE", ce[:10]), hasName: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rr rockRidge
			gotCE, more := parseSUSP(c.area, &rr)
			if rr.hasName != c.hasName || string(rr.name) != c.wantName {
				t.Errorf("name %q (%v), want %q (%v)", rr.name, rr.hasName, c.wantName, c.hasName)
			}
			if more != (c.wantCE != nil) || (more && gotCE != *c.wantCE) {
				t.Errorf("CE %+v %v, want %+v", gotCE, more, c.wantCE)
			}
			if rr.childLink != c.child || rr.hasChild != (c.child != 0) || rr.relocated != c.reloc {
				t.Errorf("CL %d %v RE %v, want %d %v", rr.childLink, rr.hasChild, rr.relocated, c.child, c.reloc)
			}
		})
	}
}

func TestParseSUSPNameCap(t *testing.T) {
	var rr rockRidge
	piece := susp("NM", append([]byte{1}, make([]byte, 200)...))
	for range 10 {
		parseSUSP(piece, &rr)
	}
	if len(rr.name) > maxNameLen {
		t.Errorf("name grew to %d bytes, cap %d", len(rr.name), maxNameLen)
	}
}

func TestSPSkip(t *testing.T) {
	cases := []struct {
		in   []byte
		skip int
		ok   bool
	}{
		{[]byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0}, 0, true},
		{[]byte{'S', 'P', 7, 1, 0xBE, 0xEF, 4, 'x'}, 4, true},
		{[]byte{'S', 'P', 7, 1, 0xBE, 0xEE, 0}, 0, false},
		{[]byte{'P', 'X', 7, 1, 0xBE, 0xEF, 0}, 0, false},
		{[]byte{'S', 'P', 7}, 0, false},
	}
	for _, c := range cases {
		skip, ok := spSkip(c.in)
		if skip != c.skip || ok != c.ok {
			t.Errorf("spSkip(% x) = %d, %v; want %d, %v", c.in, skip, ok, c.skip, c.ok)
		}
	}
}

func TestDChars(t *testing.T) {
	cases := []struct{ in, base, ext string }{
		{"user-data", "USER_DAT", ""},
		{"meta-data", "META_DAT", ""},
		{"network-config", "NETWORK_", ""},
		{"vendor.yaml", "VENDOR", "YAM"},
		{".hidden", "_HIDDEN", ""},
		{"a.b.c", "A_B", "C"},
		{"ÿ.x", "__", "X"},
		{".", "_", ""},
	}
	for _, c := range cases {
		base, ext := dChars(c.in)
		if base != c.base || ext != c.ext {
			t.Errorf("dChars(%q) = %q, %q; want %q, %q", c.in, base, ext, c.base, c.ext)
		}
	}
}

func TestIdentLess(t *testing.T) {
	// ECMA-119 9.3: names compare padded with spaces, so "A" sorts before
	// "A0" and "A.Z" before "AB.A".
	cases := []struct {
		a, b string
		less bool
	}{
		{"A.;1", "A0.;1", true},
		{"A.Z;1", "AB.A;1", true},
		{"AB.A;1", "A.Z;1", false},
		{"META_DAT.;1", "USER_DAT.;1", true},
		{"X.A;1", "X.B;1", true},
		{"X.B;1", "X.A;1", false},
	}
	for _, c := range cases {
		if got := identLess(c.a, c.b); got != c.less {
			t.Errorf("identLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}
