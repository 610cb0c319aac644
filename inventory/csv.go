package inventory

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/stagehand-dev/stagehand/internal/safetext"
	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Rack manifests: a CSV with a header row naming its columns. Columns
// may come in any order and any subset (mac is required); a column
// absent from the header leaves that field of an existing host alone,
// so a manifest that only carries serials can be re-imported over a
// full one. A cell of a quote followed by what a spreadsheet runs as a
// formula ("'=x", "'-7") loses that quote (safetext.Uncell): it is how
// the export (writeCSV) keeps such values inert, and how a spreadsheet
// marks a cell as text.

// Column names are the Names of Fields, matched after folding case and
// dropping '-', '_', '.' and spaces, so "networkType", "network.type" and
// "NETWORK_TYPE" agree. The report's read-only columns (state,
// last_ip, ...) are accepted and ignored, so that an export imports
// back as a manifest.
func csvColumns() []string {
	cols := make([]string, len(Fields))
	for i, f := range Fields {
		cols[i] = f.Name
	}
	return cols
}

// Bounds on a manifest.
const (
	MaxImportBytes = 16 << 20
	MaxImportRows  = 100_000
	maxCell        = 64 << 10
)

func foldColumn(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(s))
}

// Record is one parsed manifest row: the host it describes and which of
// its fields the manifest sets.
type Record struct {
	Row  int // 1-based line of the data row in the file (the header is row 1)
	Host Host
	Set  map[string]bool // canonical column names present in the header
	bad  bool            // ParseCSV found a problem: Import reports, never writes, it
}

// RowError is one problem in a manifest.
type RowError struct {
	Row    int    `json:"row"`
	MAC    string `json:"mac,omitempty"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (e RowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "row %d", e.Row)
	if e.MAC != "" {
		fmt.Fprintf(&b, " (mac %s)", e.MAC)
	}
	if e.Field != "" {
		b.WriteString(": field " + e.Field)
	}
	return b.String() + ": " + e.Reason
}

// ImportError lists every bad row of a rejected manifest.
type ImportError struct{ Rows []RowError }

func (e *ImportError) Error() string {
	parts := make([]string, len(e.Rows))
	for i, r := range e.Rows {
		parts[i] = r.Error()
	}
	return fmt.Sprintf("manifest rejected, nothing imported: %d problem(s): %s", len(e.Rows), strings.Join(parts, "; "))
}

func (e *ImportError) Unwrap() error { return ErrInvalid }

// ParseCSV reads a manifest. It is the codec only: it checks shape and
// syntax (header, MACs, tags); the store checks references and
// uniqueness in Import. With row-level problems it returns the records
// it could read together with an *ImportError, so that Import can add
// its own findings and the operator gets every problem in one go.
func ParseCSV(r io.Reader) ([]Record, error) {
	cr := csv.NewReader(io.LimitReader(r, MaxImportBytes+1))
	cr.FieldsPerRecord = 0 // every row as wide as the header
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ImportError{Rows: []RowError{{Row: 1, Reason: "empty file: want a header row naming the columns, e.g. mac,name,serial,profile"}}}
		}
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		return nil, &ImportError{Rows: []RowError{{Row: 1, Reason: "header: " + err.Error()}}}
	}
	canon := map[string]string{}
	for _, c := range reportOnlyColumns() {
		canon[foldColumn(c)] = ""
	}
	for _, c := range csvColumns() {
		canon[foldColumn(c)] = c
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	var bad []RowError
	for i, h := range header {
		c, ok := canon[foldColumn(strings.TrimPrefix(h, "\ufeff"))]
		switch {
		case !ok:
			bad = append(bad, RowError{Row: 1, Field: h, Reason: "unknown column; known: " + strings.Join(csvColumns(), ", ")})
		case c == "":
			continue // a report column: read-only
		case seen[c]:
			bad = append(bad, RowError{Row: 1, Field: h, Reason: "column given twice"})
		}
		seen[c] = true
		cols[i] = c
	}
	if !seen["mac"] {
		bad = append(bad, RowError{Row: 1, Field: "mac", Reason: "required column missing"})
	}
	if len(bad) > 0 {
		return nil, &ImportError{Rows: bad}
	}
	var recs []Record
	for row := 2; ; row++ {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, RowError{Row: pe.Line, Reason: pe.Err.Error()})
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					continue
				}
				break
			}
			// Not the file's fault (a body over its size bound, a
			// broken connection): no row to blame, so no ImportError.
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		if len(recs) >= MaxImportRows {
			bad = append(bad, RowError{Row: row, Reason: fmt.Sprintf("more than %d rows", MaxImportRows)})
			break
		}
		rec, errs := parseRow(row, cols, fields)
		bad = append(bad, errs...)
		rec.bad = len(errs) > 0
		recs = append(recs, rec)
	}
	if off := cr.InputOffset(); off > MaxImportBytes {
		bad = append(bad, RowError{Row: 0, Reason: fmt.Sprintf("file larger than %d bytes", MaxImportBytes)})
	}
	if len(bad) > 0 {
		return recs, &ImportError{Rows: bad}
	}
	return recs, nil
}

func parseRow(row int, cols, fields []string) (Record, []RowError) {
	rec := Record{Row: row, Set: map[string]bool{}}
	h := &rec.Host
	var bad []RowError
	for i, c := range cols {
		if c == "" {
			continue // a report column
		}
		v := safetext.Uncell(fields[i]) // the export's formula guard (writeCSV)
		rec.Set[c] = true
		if len(v) > maxCell {
			bad = append(bad, RowError{Row: row, Field: c, Reason: fmt.Sprintf("longer than %d bytes", maxCell)})
			continue
		}
		f, _ := FieldByName(c)
		if err := f.Set(h, v); err != nil {
			bad = append(bad, RowError{Row: row, Field: c, Reason: strings.TrimPrefix(err.Error(), "field "+c+": ")})
		}
	}
	mac, err := NormalizeMAC(h.MAC)
	if err != nil {
		bad = append(bad, RowError{Row: row, MAC: h.MAC, Field: "mac", Reason: fmt.Sprintf("%q is not an Ethernet address", h.MAC)})
	} else {
		h.MAC = mac
	}
	for i := range bad {
		bad[i].MAC = h.MAC
	}
	return rec, bad
}

// ParseTags reads "k=v;k=v". Keys are non-empty and unique.
func ParseTags(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value (tags are k=v;k=v)", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("tag %q given twice", k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// FormatTags is the inverse of ParseTags, with keys sorted.
func FormatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ";")
}

// ImportResult counts what an import did.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
}

// Import writes a parsed manifest in one transaction: every row is
// validated first (fields, profile references, MAC, name and address
// uniqueness within the file and against the store), and either all rows
// are written or none is, with every problem listed. Rows for MACs
// already in the store update those hosts in place; their state moves
// only as Transition allows (a discovered host given a profile is
// assigned), as with every other write.
func (s *Store) Import(recs []Record) (ImportResult, error) { return s.ImportParsed(recs, nil) }

// ImportParsed is Import for ParseCSV's records and error: the parse
// problems are reported together with Import's own findings, and
// nothing is written.
func (s *Store) ImportParsed(recs []Record, parsed error) (ImportResult, error) {
	var res ImportResult
	var prior []RowError
	if parsed != nil {
		var ie *ImportError
		if !errors.As(parsed, &ie) {
			return res, parsed
		}
		prior = ie.Rows
		for _, r := range ie.Rows {
			if r.Row <= 1 { // header or file-level: the rows mean nothing
				return res, parsed
			}
		}
	}
	err := s.write(func(w *wtx) (error, error) {
		res = ImportResult{}
		hosts, exists, bad := checkImport(w, recs, slices.Clone(prior))
		if len(bad) > 0 {
			sort.SliceStable(bad, func(i, j int) bool { return bad[i].Row < bad[j].Row })
			return &ImportError{Rows: bad}, nil
		}
		now := s.now().UTC()
		for i := range hosts {
			h := &hosts[i]
			h.UpdatedAt = now
			kind := "imported"
			var squatted *Host
			if exists[i] {
				if old, err := get[Host](w, colHosts, h.MAC, "host"); err == nil && old.onlyDiscovered() {
					squatted = &old
				}
			}
			if exists[i] && squatted == nil {
				res.Updated++
				kind = "reimported"
				if err := w.assign(h); err != nil {
					return nil, err
				}
			} else {
				if squatted != nil { // the manifest's host replaces it (see CreateHost)
					h.forgetReported()
				}
				res.Created++
				h.CreatedAt = now
				h.State = initialState(h)
			}
			if err := w.saveHost(h, nil); err != nil {
				return nil, err
			}
			ev := Event{Time: now, Kind: kind, Attempt: h.Attempt, Detail: fmt.Sprintf("row %d, state %s", recs[i].Row, h.State)}
			if err := w.addEvent(h.MAC, ev); err != nil {
				return nil, err
			}
			if squatted != nil {
				if err := w.addEvent(h.MAC, takeover(squatted, ev)); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	})
	return res, err
}

// importClaims are what the rows of one import claim (names, reserved
// addresses, static site addresses, other NICs' MACs, own MACs), by row,
// and what the hosts they update give up, so that a swap between two
// rows is not a collision with the store.
type importClaims struct {
	row     map[string]map[string]int    // kind → value → first row claiming it
	leaving map[string]map[string]string // kind → value → MAC giving it up
	macOf   map[int]string               // row → its MAC, to name the other host of a collision
}

func (c *importClaims) claim(kind, v string, row int) (int, bool) {
	if c.row[kind] == nil {
		c.row[kind] = map[string]int{}
	}
	prev, dup := c.row[kind][v]
	if !dup {
		c.row[kind][v] = row
	}
	return prev, dup
}

func (c *importClaims) leave(kind, v, mac string) {
	if v == "" {
		return
	}
	if c.leaving[kind] == nil {
		c.leaving[kind] = map[string]string{}
	}
	c.leaving[kind][v] = mac
}

// left reports whether v is given up by a host other than mac.
func (c *importClaims) left(kind, v, mac string) bool {
	holder, ok := c.leaving[kind][v]
	return ok && holder != mac
}

// checkImport merges every good row onto its stored host (or a new one)
// and checks the result; bad lists every problem found.
func checkImport(tx storage.Tx, recs []Record, bad []RowError) (hosts []Host, exists []bool, _ []RowError) {
	c := &importClaims{row: map[string]map[string]int{}, leaving: map[string]map[string]string{}, macOf: map[int]string{}}
	for _, rec := range recs {
		c.macOf[rec.Row] = rec.Host.MAC
		if !rec.bad {
			c.claim("anyMAC", rec.Host.MAC, rec.Row)
		}
		old, err := get[Host](tx, colHosts, rec.Host.MAC, "host")
		if err != nil {
			continue
		}
		merged := old
		if old.Site.Network != nil { // the merge writes through the pointer
			n := *old.Site.Network
			merged.Site.Network = &n
		}
		mergeRecord(&merged, rec)
		if rec.Set["name"] && old.Name != merged.Name {
			c.leave("name", old.Name, old.MAC)
		}
		if rec.Set["dhcpAddress"] && old.DHCPAddress != merged.DHCPAddress {
			c.leave("dhcpAddress", old.DHCPAddress, old.MAC)
		}
		if ip := siteIP(&old); ip != "" && ip != siteIP(&merged) {
			c.leave("ipAddress", ip, old.MAC)
		}
		if rec.Set["otherMACs"] {
			for _, m := range old.OtherMACs {
				if !slices.ContainsFunc(rec.Host.OtherMACs, func(n string) bool { k, _ := NormalizeMAC(n); return k == m }) {
					c.leave("otherMACs", m, old.MAC)
				}
			}
		}
	}
	hosts = make([]Host, len(recs))
	exists = make([]bool, len(recs))
	for i, rec := range recs {
		if rec.bad {
			continue
		}
		fail := func(field, reason string) {
			bad = append(bad, RowError{Row: rec.Row, MAC: rec.Host.MAC, Field: field, Reason: reason})
		}
		if prev, dup := c.claim("mac", rec.Host.MAC, rec.Row); dup {
			fail("mac", fmt.Sprintf("duplicate of row %d", prev))
			continue
		}
		h, err := get[Host](tx, colHosts, rec.Host.MAC, "host")
		exists[i] = err == nil
		if !exists[i] {
			h = Host{MAC: rec.Host.MAC}
		}
		mergeRecord(&h, rec)
		// As in UpdateHost: no transition leads back to discovered.
		if exists[i] && h.Profile == "" && h.State != StateDiscovered {
			fail("profile", "cannot be cleared in state "+h.State.String())
			continue
		}
		if err := h.validate(); err != nil {
			fail("", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
			continue
		}
		if !checkImportRow(tx, c, &h, rec.Row, fail) {
			continue
		}
		hosts[i] = h
	}
	return hosts, exists, bad
}

// checkImportRow checks one merged host against the other rows and the
// store.
func checkImportRow(tx storage.Tx, c *importClaims, h *Host, row int, fail func(field, reason string)) bool {
	if h.Name != "" {
		if prev, dup := c.claim("name", h.Name, row); dup {
			fail("name", fmt.Sprintf("%q is also used by row %d", h.Name, prev))
		}
	}
	if a := h.DHCPAddress; a != "" {
		if prev, dup := c.claim("dhcpAddress", a, row); dup {
			fail("dhcpAddress", fmt.Sprintf("%s is also reserved by row %d", a, prev))
		}
	}
	if ip := siteIP(h); ip != "" {
		if prev, dup := c.claim("ipAddress", ip, row); dup {
			fail("ipAddress", fmt.Sprintf("%s is also the static address of row %d (host %s)", ip, prev, c.macOf[prev]))
		}
	}
	for _, m := range h.OtherMACs {
		if prev, dup := c.claim("otherMACs", m, row); dup {
			fail("otherMACs", fmt.Sprintf("%s is also listed by row %d", m, prev))
		}
		if prev, ok := c.row["anyMAC"][m]; ok {
			fail("otherMACs", fmt.Sprintf("%s is the MAC of row %d", m, prev))
		}
	}
	chk := *h
	if c.left("name", h.Name, h.MAC) {
		chk.Name = "" // its holder renames away in this import
	}
	if c.left("dhcpAddress", h.DHCPAddress, h.MAC) {
		chk.DHCPAddress = "" // its holder gives it up in this import
	}
	if c.left("ipAddress", siteIP(h), h.MAC) {
		chk.Site.Network = nil // its holder gives it up in this import
	}
	chk.OtherMACs = slices.DeleteFunc(slices.Clone(h.OtherMACs), func(m string) bool {
		return c.left("otherMACs", m, h.MAC) // its holder gives it up in this import
	})
	if err := checkRefs(tx, &chk); err != nil {
		msg := err.Error()
		for _, p := range []string{ErrInvalid.Error() + ": ", ErrExists.Error() + ": "} {
			msg = strings.TrimPrefix(msg, p)
		}
		fail("", msg)
		return false
	}
	if err := checkRender(tx, h); err != nil {
		fail("", err.Error())
		return false
	}
	return true
}

// mergeRecord copies the columns a manifest row sets onto h.
func mergeRecord(h *Host, rec Record) { MergeFields(h, &rec.Host, rec.Set) }
