// Command rackgen plays a rack of bare-metal hosts through stagehand's
// whole boot chain, the way a rack power-on does: firmware proxyDHCP
// DISCOVER, the PXE boot server REQUEST to port 4011, the TFTP fetch of the
// iPXE binary, iPXE's own DHCP, stage 1, stage 2, kernel and initrd over
// HTTP, the installer's user-data and its completion callback. It is the
// load client of bench/rack/run.sh; see docs/bench/rack.md.
//
//	rackgen hosts  -n N                 the rack: "MAC IP" per line
//	rackgen addrs  -n N -dev IF         `ip -batch` lines giving each host its address
//	rackgen csv    -n N -profile P      the rack manifest for `stagehand host import`
//	rackgen load   -n N …               run the rack, write a JSON result
//	rackgen verify -n N …               check the inventory afterwards
//	rackgen report …                    turn results into a Markdown fragment
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rackgen hosts|addrs|csv|load|verify|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "hosts", "addrs", "csv":
		err = runList(os.Args[1], os.Args[2:], os.Stdout)
	case "load":
		err = runLoad(os.Args[2:])
	case "verify":
		err = runVerify(os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rackgen:", err)
		os.Exit(1)
	}
}
