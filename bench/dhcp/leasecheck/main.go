// Command leasecheck proves that every lease stagehand acknowledged during
// a benchmark survived a SIGKILL: it reads the "Leases for REQUEST-ACK"
// section that `perfdhcp -x l` prints (client_id,address lines; client_id
// is 01 followed by the MAC) and looks each one up in the inventory file
// the killed server left behind. Run it only after the server is dead: it
// opens the store itself.
//
//	leasecheck -data DIR -perfdhcp OUT
//
// It prints "acks=N distinct=D stored=S missing=M" and exits 1 if M > 0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/stagehand-dev/stagehand/inventory"
)

func main() {
	data := flag.String("data", "", "stagehand --data-dir of the killed server")
	out := flag.String("perfdhcp", "", "perfdhcp output captured with -x l")
	flag.Parse()
	if *data == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: leasecheck -data DIR -perfdhcp FILE")
		os.Exit(2)
	}
	acked, n, err := ackedLeases(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasecheck:", err)
		os.Exit(2)
	}
	st, err := inventory.Open(*data, inventory.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasecheck:", err)
		os.Exit(2)
	}
	defer st.Close()
	ls, err := st.Leases()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasecheck:", err)
		os.Exit(2)
	}
	stored := make(map[string]string, len(ls))
	for _, l := range ls {
		stored[l.MAC] = l.IP
	}
	missing := 0
	for mac, ip := range acked {
		if stored[mac] != ip {
			missing++
			if missing <= 5 {
				fmt.Fprintf(os.Stderr, "leasecheck: ACKed %s → %s, store has %q\n", mac, ip, stored[mac])
			}
		}
	}
	fmt.Printf("acks=%d distinct=%d stored=%d missing=%d\n", n, len(acked), len(ls), missing)
	if missing > 0 {
		os.Exit(1)
	}
}

// ackedLeases returns MAC → last acknowledged address, and the number of
// ACK lines read.
func ackedLeases(path string) (map[string]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	m := map[string]string{}
	n, in := 0, false
	sc := bufio.NewScanner(f)
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
			return nil, 0, fmt.Errorf("%s: bad lease line %q", path, line)
		}
		m[hw.String()] = ip
		n++
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("%s: no \"Leases for REQUEST-ACK\" lines (run perfdhcp with -x l)", path)
	}
	return m, n, nil
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
