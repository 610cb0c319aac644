// Command server runs stagehand's tftp.Server alone, for bench/tftp/run.sh:
// the same package cmd/stagehand serves, without DHCP, HTTP or the store,
// so the server's CPU time is the TFTP path's alone.
//
// SIGINT or SIGTERM stop it; it then writes the CPU profile asked for with
// -cpuprofile and prints the server's Stats on standard error.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/stagehand-dev/stagehand/tftp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:69", "UDP address to listen on")
	dir := flag.String("dir", ".", "directory to serve")
	maxTransfers := flag.Int("max", 1000, "concurrent transfers (dnsmasq's --tftp-max in the comparison)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := run(*addr, *dir, *maxTransfers, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr, dir string, maxTransfers int, cpuprofile string) error {
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &tftp.Server{Handler: tftp.Dir(dir), MaxTransfers: maxTransfers}
	err = s.Serve(ctx, conn)
	fmt.Fprintf(os.Stderr, "%+v\n", s.Stats())
	return err
}
