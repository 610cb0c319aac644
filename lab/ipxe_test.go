//go:build e2e

package lab_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/lab"
)

// TestIPXEHTTPBoot runs the whole machine side of the boot chain without
// stagehand: the NIC ROM's iPXE takes a lease and a script URL from
// dnsmasq, fetches the script, kernel and initramfs from a Go HTTP server,
// and the stand-in then fetches its user-data and calls back.
func TestIPXEHTTPBoot(t *testing.T) {
	for _, tc := range []struct {
		name string
		fw   lab.Firmware
		ra   bool
	}{
		{"bios", lab.BIOS, false},
		{"bios-ra", lab.BIOS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kernel, initrd := lab.Artifacts(t)
			n := lab.NewNet(t, "ipxe"+tc.fw.String(), "10.99.0.1/24")
			base := "http://" + n.ServerIP.String() + ":8080"
			lab.RunDnsmasqSite(t, n.NS, n.Bridge, n.Host(100).String(), n.Host(150).String(),
				"--dhcp-boot="+base+"/boot.ipxe")
			if tc.ra {
				lab.RunRA(t, n)
			}

			srv := &installServer{userdata: userData(base)}
			var mu sync.Mutex
			seen := map[string]time.Time{}
			mux := http.NewServeMux()
			mux.HandleFunc("/boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen["script"] = time.Now()
				mu.Unlock()
				fmt.Fprintf(w, "#!ipxe\necho LAB: script fetched\n"+
					"kernel %s/vmlinuz console=ttyS0 panic=-1 initrd=installer.cpio.gz config_url=%s/userdata/%s\n"+
					"initrd %s/installer.cpio.gz\nboot\n", base, base, token, base)
			})
			mux.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, kernel) })
			mux.HandleFunc("/installer.cpio.gz", func(w http.ResponseWriter, r *http.Request) {
				http.ServeFile(w, r, filepath.Clean(initrd))
			})
			mux.Handle("/", srv)
			ln, err := lab.ListenIn(n.NS, "tcp4", n.ServerIP.String()+":8080")
			if err != nil {
				t.Fatal(err)
			}
			hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			go hs.Serve(ln)
			t.Cleanup(func() { hs.Close() })

			start := time.Now()
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, NICROM: true, Timeout: 3 * time.Minute})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := vm.Wait(ctx); err != nil {
				t.Fatalf("vm did not power off cleanly: %v", err)
			}
			mu.Lock()
			t.Logf("%s: boot.ipxe fetched after %s, power-off after %s", tc.name,
				seen["script"].Sub(start).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
			mu.Unlock()
			log := vm.Log()
			for _, want := range []string{"LAB: script fetched", "STANDIN: site.name=lab-node-1", "STANDIN: callback ok"} {
				if !strings.Contains(log, want) {
					t.Errorf("serial log lacks %q", want)
				}
			}
			if got := srv.count("POST /callback/" + token + "/done"); got != 1 {
				t.Errorf("done callback received %d times, want 1", got)
			}
		})
	}
}
