//go:build rackprofile

// This file is not part of stagehand. bench/rack/run.sh adds it to
// cmd/stagehand with `go build -overlay` for one profiling run, so that the
// server's CPU profile can be taken without a flag or a change in the
// server's source: the profile starts when the process does and is
// written out on SIGUSR1, after the rack has booted.

package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("RACKBENCH_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	go func() {
		<-c
		pprof.StopCPUProfile()
		f.Close()
	}()
}
