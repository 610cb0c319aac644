package inventory

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Rack manifests: a CSV with a header row naming its columns. Columns
// may come in any order and any subset (mac is required); a column
// absent from the header leaves that field of an existing host alone,
// so a manifest that only carries serials can be re-imported over a
// full one.

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
		v := fields[i]
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
// validated first (fields, profile references, MAC and name uniqueness
// within the file and against the store), and either all rows are
// written or none is, with every problem listed. Rows for MACs already
// in the store update those hosts in place; their state is kept.
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		bad := prior
		rowOfMAC := map[string]int{}
		rowOfName := map[string]int{}
		hosts := make([]Host, len(recs))
		exists := make([]bool, len(recs))
		// Names this import takes away from hosts it also renames, so that
		// a swap between two rows is not a collision with the store.
		leaving := map[string]string{} // name → MAC giving it up
		// Likewise reserved DHCP addresses.
		leavingAddr := map[string]string{}
		rowOfAddr := map[string]int{}
		// And other NICs' MACs (Host.OtherMACs).
		leavingOther := map[string]string{}
		rowOfOther := map[string]int{}
		rowOfAnyMAC := map[string]int{} // every row's own MAC, for the other-NIC check
		for _, rec := range recs {
			if _, dup := rowOfAnyMAC[rec.Host.MAC]; !dup && !rec.bad {
				rowOfAnyMAC[rec.Host.MAC] = rec.Row
			}
			old, err := get[Host](tx.Bucket(bucketHosts), rec.Host.MAC, "host")
			if err == nil && rec.Set["name"] && old.Name != "" && old.Name != rec.Host.Name {
				leaving[old.Name] = old.MAC
			}
			if err == nil && rec.Set["dhcpAddress"] && old.DHCPAddress != "" && old.DHCPAddress != rec.Host.DHCPAddress {
				leavingAddr[old.DHCPAddress] = old.MAC
			}
			if err == nil && rec.Set["otherMACs"] {
				for _, m := range old.OtherMACs {
					if !slices.ContainsFunc(rec.Host.OtherMACs, func(n string) bool { k, _ := NormalizeMAC(n); return k == m }) {
						leavingOther[m] = old.MAC
					}
				}
			}
		}
		for i, rec := range recs {
			if rec.bad {
				continue
			}
			fail := func(field, reason string) {
				bad = append(bad, RowError{Row: rec.Row, MAC: rec.Host.MAC, Field: field, Reason: reason})
			}
			if prev, dup := rowOfMAC[rec.Host.MAC]; dup {
				fail("mac", fmt.Sprintf("duplicate of row %d", prev))
				continue
			}
			rowOfMAC[rec.Host.MAC] = rec.Row
			h, err := get[Host](tx.Bucket(bucketHosts), rec.Host.MAC, "host")
			exists[i] = err == nil
			if !exists[i] {
				h = Host{MAC: rec.Host.MAC}
			}
			oldName := h.Name
			mergeRecord(&h, rec)
			// As in UpdateHost: no transition leads back to discovered.
			if exists[i] && h.Profile == "" && h.State != StateDiscovered {
				fail("profile", "cannot be cleared in state "+h.State.String())
				continue
			}
			if h.Name != "" {
				if prev, dup := rowOfName[h.Name]; dup {
					fail("name", fmt.Sprintf("%q is also used by row %d", h.Name, prev))
				}
				rowOfName[h.Name] = rec.Row
			}
			if err := h.validate(); err != nil {
				fail("", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
				continue
			}
			if a := h.DHCPAddress; a != "" {
				if prev, dup := rowOfAddr[a]; dup {
					fail("dhcpAddress", fmt.Sprintf("%s is also reserved by row %d", a, prev))
				}
				rowOfAddr[a] = rec.Row
			}
			for _, m := range h.OtherMACs {
				if prev, dup := rowOfOther[m]; dup {
					fail("otherMACs", fmt.Sprintf("%s is also listed by row %d", m, prev))
				}
				if row, ok := rowOfAnyMAC[m]; ok {
					fail("otherMACs", fmt.Sprintf("%s is the MAC of row %d", m, row))
				}
				rowOfOther[m] = rec.Row
			}
			chk := h
			if mac, ok := leaving[h.Name]; ok && mac != h.MAC {
				chk.Name = "" // its holder renames away in this import
			}
			if mac, ok := leavingAddr[h.DHCPAddress]; ok && mac != h.MAC {
				chk.DHCPAddress = "" // its holder gives it up in this import
			}
			chk.OtherMACs = slices.DeleteFunc(slices.Clone(h.OtherMACs), func(m string) bool {
				holder, ok := leavingOther[m]
				return ok && holder != h.MAC // its holder gives it up in this import
			})
			if err := s.checkRefs(tx, &chk, oldName); err != nil {
				msg := err.Error()
				for _, p := range []string{ErrInvalid.Error() + ": ", ErrExists.Error() + ": "} {
					msg = strings.TrimPrefix(msg, p)
				}
				fail("", msg)
				continue
			}
			if err := s.checkRender(tx, &h); err != nil {
				fail("", err.Error())
				continue
			}
			hosts[i] = h
		}
		if len(bad) > 0 {
			sort.SliceStable(bad, func(i, j int) bool { return bad[i].Row < bad[j].Row })
			return &ImportError{Rows: bad}
		}
		now := s.now().UTC()
		// Names move between hosts within one import (a swap): clear
		// every old name first, then write the new ones.
		names := tx.Bucket(bucketNames)
		for i := range hosts {
			if exists[i] {
				old, _ := get[Host](tx.Bucket(bucketHosts), hosts[i].MAC, "host")
				if old.Name != "" {
					names.Delete([]byte(old.Name))
				}
			}
		}
		for i := range hosts {
			h := &hosts[i]
			h.UpdatedAt = now
			kind := "imported"
			if exists[i] {
				res.Updated++
				kind = "reimported"
				if h.State == StateDiscovered && h.Profile != "" {
					h.State = StateReady
				}
			} else {
				res.Created++
				h.CreatedAt = now
				h.State = StateReady
				if h.Profile == "" {
					h.State = StateDiscovered
				}
			}
			if err := s.saveHost(tx, h, ""); err != nil {
				return err
			}
			if err := s.addEvent(tx, h.MAC, Event{Time: now, Kind: kind, Attempt: h.Attempt, Detail: fmt.Sprintf("row %d, state %s", recs[i].Row, h.State)}); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// mergeRecord copies the columns a manifest row sets onto h.
func mergeRecord(h *Host, rec Record) { MergeFields(h, &rec.Host, rec.Set) }
