// Package perfdhcp reads what Kea's perfdhcp reports about the leases a
// server acknowledged, so that a benchmark (bench/dhcp/leasecheck) and a
// fault test (faults) can check those leases against the lease store a
// killed server left behind. It knows nothing of the store.
package perfdhcp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
)

// AckedLeases reads the "Leases for REQUEST-ACK" section that
// `perfdhcp -x l` prints (client_id,address lines; client_id is 01
// followed by the MAC) and returns MAC (canonical lower-case colon form)
// → last acknowledged address, and the number of ACK lines read. No ACK
// line at all is an error: perfdhcp ran without -x l, or nothing was
// acknowledged, and a check over nothing proves nothing.
func AckedLeases(r io.Reader) (map[string]string, int, error) {
	m := map[string]string{}
	n, in := 0, false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "***") {
			in = strings.Contains(line, "Leases for REQUEST-ACK")
			continue
		}
		id, rest, ok := strings.Cut(line, ",")
		if !in || !ok || len(id) != 14 || !strings.HasPrefix(id, "01") {
			continue
		}
		ip, _, _ := strings.Cut(rest, ",")
		hw, err := net.ParseMAC(colons(id[2:]))
		if err != nil || net.ParseIP(ip) == nil {
			return nil, 0, fmt.Errorf("perfdhcp: bad lease line %q", line)
		}
		m[hw.String()] = ip
		n++
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("perfdhcp: no \"Leases for REQUEST-ACK\" lines (run perfdhcp with -x l)")
	}
	return m, n, nil
}

// Missing lists, sorted, "MAC → IP, store has X" for every acknowledged
// lease that stored (MAC → IP) does not hold with the same address.
func Missing(acked, stored map[string]string) []string {
	var out []string
	for mac, ip := range acked {
		if stored[mac] != ip {
			out = append(out, fmt.Sprintf("ACKed %s → %s, store has %q", mac, ip, stored[mac]))
		}
	}
	sort.Strings(out)
	return out
}

// colons turns 12 hex digits into aa:bb:cc:dd:ee:ff.
func colons(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}
