package safetext

import "strings"

// CSV cells and formula injection. A spreadsheet opening a CSV file takes
// a cell that begins with '=', '+', '-' or '@' for a formula (tab and CR
// count too: some strip them first), and a formula can fetch URLs or
// build links that carry the sheet's data away (OWASP's "CSV Injection").
// The usual remedy, followed here, is to begin such a cell with a single
// quote, which spreadsheets read as "this cell is text" and do not show.
//
// The export is also a manifest that imports back, so the rule must be
// undone exactly: Cell prefixes a quote to every value that begins with
// any number of quotes followed by a dangerous character, and Uncell
// removes one quote from every cell of that shape. Cell never writes a
// cell that Uncell would read as something else, and a value that
// itself begins with "'=" survives the round trip.

// dangerous reports whether a cell beginning with c is read as a formula.
func dangerous(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// quoted reports whether s is a run of quotes (maybe none) and then a
// dangerous character: the cells Cell prefixes.
func quoted(s string) bool {
	rest := strings.TrimLeft(s, "'")
	return rest != "" && dangerous(rest[0])
}

// Cell is v as a CSV cell no spreadsheet reads as a formula: v itself,
// or v behind a single quote when it begins (after any quotes) with '=',
// '+', '-', '@', tab or CR.
func Cell(v string) string {
	if quoted(v) {
		return "'" + v
	}
	return v
}

// Uncell is the inverse of Cell: it drops the quote Cell added, and
// leaves every other cell alone. A hand-written manifest cell "'=x"
// reads as "=x", as a spreadsheet shows it.
func Uncell(c string) string {
	if strings.HasPrefix(c, "'") && quoted(c) {
		return c[1:]
	}
	return c
}
