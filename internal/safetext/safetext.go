// Package safetext makes text that a client supplied safe to keep and to
// show: one rule for every string a machine on the provisioning network
// sends (a TFTP filename, SMBIOS facts, an installer's failure message),
// applied where the inventory stores it and again where the CLI prints it.
//
// Such a machine has no credentials, so its text is a stranger's. Raw, it
// could drive the operator's terminal: ESC and the C1 controls (U+009B is
// CSI by itself) clear the screen, set the window title, move the cursor
// to draw fake lines or, where OSC 52 is honoured, write the clipboard;
// bidi controls (U+202E) make a line read in another order than it is
// stored; bytes that are not UTF-8 reach a terminal as whatever its
// decoder makes of them.
//
// Clean escapes every such character rather than dropping it, in Go's
// own notation (\x1b, \u202e, \xff for a byte that is not UTF-8; \n, \r
// and \t by name), so that the record keeps the evidence of what was
// sent and stays one printable line. Backslashes are left as they are:
// that keeps Clean idempotent (text it returned comes back unchanged, so
// the CLI can apply it again to what the store holds), at the price that
// a client that sends the four characters `\x1b` is stored the same as
// one that sends ESC. Both are the client's text, and neither can act on
// a terminal.
package safetext

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Line is Clean without a bound: what the CLI applies to every value it
// prints in a table or an event line.
func Line(s string) string { return Clean(s, 0) }

// Clean returns s with every control character, bidi or other format
// character, line or paragraph separator, and byte that is not UTF-8
// written as a visible escape, cut to at most limit bytes (limit <= 0:
// no bound). A cut falls between two characters or escapes, never inside
// one, so the result is valid UTF-8 and ends in no half escape.
//
// Clean is idempotent: Clean(Clean(s, n), n) == Clean(s, n), and text
// within the bound that needs no escape is returned as it is.
func Clean(s string, limit int) string {
	if (limit <= 0 || len(s) <= limit) && !strings.ContainsFunc(s, escaped) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		tok := s[i : i+size]
		switch {
		case r == utf8.RuneError && size == 1:
			tok = fmt.Sprintf(`\x%02x`, s[i])
		case escaped(r):
			tok = escape(r)
		}
		if limit > 0 && b.Len()+len(tok) > limit {
			break
		}
		b.WriteString(tok)
		i += size
	}
	return b.String()
}

// escaped reports whether r is written as an escape: C0 controls, DEL
// and the C1 controls (unicode.Cc), format characters (unicode.Cf: the
// bidi embeddings, overrides and isolates U+202A–U+202E and
// U+2066–U+2069, the marks U+200E, U+200F and U+061C, zero-width
// characters, the byte order mark, tag characters), and the line and
// paragraph separators U+2028 and U+2029, which some viewers break lines
// at.
func escaped(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// escape is r's escape.
func escape(r rune) string {
	switch {
	case r == '\n':
		return `\n`
	case r == '\r':
		return `\r`
	case r == '\t':
		return `\t`
	case r < 0x80:
		return fmt.Sprintf(`\x%02x`, r)
	case r <= 0xffff:
		return fmt.Sprintf(`\u%04x`, r)
	}
	return fmt.Sprintf(`\U%08x`, r)
}

// JSON returns the JSON text b with every character Clean would escape
// and encoding/json leaves as it is (the C1 controls, bidi and other
// format characters, the line and paragraph separators) written as a
// \u escape: the same JSON value, safe to print on a terminal.
// encoding/json already escapes the C0 controls and replaces bytes that
// are not UTF-8; outside strings JSON text is ASCII, so every character
// changed here is inside a string.
func JSON(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r >= utf8.RuneSelf && escaped(r) }) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r >= utf8.RuneSelf && escaped(r) {
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}
