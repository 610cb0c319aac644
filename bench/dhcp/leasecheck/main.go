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
	"flag"
	"fmt"
	"os"

	"github.com/stagehand-dev/stagehand/dhcp/perfdhcp"
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
	f, err := os.Open(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasecheck:", err)
		os.Exit(2)
	}
	acked, n, err := perfdhcp.AckedLeases(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasecheck:", *out+":", err)
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
	missing := perfdhcp.Missing(acked, stored)
	for i, m := range missing {
		if i == 5 {
			break
		}
		fmt.Fprintln(os.Stderr, "leasecheck:", m)
	}
	fmt.Printf("acks=%d distinct=%d stored=%d missing=%d\n", n, len(acked), len(ls), len(missing))
	if len(missing) > 0 {
		st.Close()
		os.Exit(1)
	}
}
