package inventory_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
)

// BenchmarkRackFlow is the store's share of a rack powering on: each op
// is one host's boot, from its lease to its completion callback, with
// 200 hosts at once, as bench/rack drives the whole server. It uses only
// the exported API, so the same file measures any version of the store.
func BenchmarkRackFlow(b *testing.B) {
	dir := b.TempDir()
	art := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(art, []byte("kernel"), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := inventory.Open(dir, inventory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.PutProfile(inventory.Profile{Name: "edge", Kernel: art, Initrd: art,
		UserData: "#cloud-config\nstylus:\n  site:\n    paletteEndpoint: api.spectrocloud.example\n"}); err != nil {
		b.Fatal(err)
	}
	macs := make([]string, b.N)
	for i := range macs {
		macs[i] = fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
	}
	var recs []inventory.Record
	for i, m := range macs {
		recs = append(recs, inventory.Record{Row: i + 2, Host: inventory.Host{MAC: m, Profile: "edge"}, Set: map[string]bool{"mac": true, "profile": true}})
	}
	if _, err := s.Import(recs); err != nil {
		b.Fatal(err)
	}
	render := func(inventory.Host, inventory.Profile) error { return nil }
	work := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 200 {
		wg.Go(func() {
			for i := range work {
				m := macs[i]
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
				steps := []func() error{
					func() error { return s.PutLease(inventory.Lease{MAC: m, IP: ip, Expiry: time.Now().Add(time.Hour)}) },
					func() error {
						_, err := s.AddEvents([]inventory.HostEvent{{MAC: m, Kind: "dhcp", Detail: "offer"}, {MAC: "02:ff:00:00:00:01", Kind: "dhcp"}})
						return err
					},
					func() error { return s.AddEvent(m, "tftp", "undionly.kpxe") },
				}
				for _, f := range steps {
					if err := f(); err != nil {
						b.Error(err)
					}
				}
				_, tok, err := s.BeginInstallSeen(m, ip, inventory.Facts{Serial: "S"})
				if err != nil {
					b.Error(err)
					continue
				}
				if _, _, err := s.FetchUserData(tok, ip, inventory.BindToScriptIP, render); err != nil {
					b.Error(err)
				}
				if _, _, err := s.Complete(tok); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
}
