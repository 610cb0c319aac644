package tftp

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// BenchmarkTransfer fetches a 74 KB and an 850 KB boot binary at blksize
// 1468 over loopback with the Go test client, one at a time and from many
// concurrent clients. The client runs in the same process, so the figures
// are an upper bound on the client and server together; see docs/TFTP.md
// for pinned, per-transfer CPU figures.
func BenchmarkTransfer(b *testing.B) {
	dir := b.TempDir()
	files := []struct {
		name, src string
		size      int
	}{
		{"undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe", 74213},
		{"ipxe.efi", "/usr/lib/ipxe/ipxe.efi", 850528},
	}
	for _, f := range files {
		if data, err := os.ReadFile(f.src); err == nil {
			os.WriteFile(filepath.Join(dir, f.name), data, 0o644)
		} else {
			randomFile(b, dir, f.name, f.size)
		}
	}
	srv := &Server{Handler: Dir(dir), Timeout: 5 * time.Second}
	addr := testServer(b, srv)
	for _, f := range files {
		for _, window := range []int{1, 16} {
			client := &tftptest.Client{Options: []tftptest.Option{{Name: "tsize", Value: "0"}, {Name: "blksize", Value: "1468"}, {Name: "windowsize", Value: strconv.Itoa(window)}}}
			get := func(b *testing.B) {
				res, err := client.Get(addr, f.name)
				if err != nil {
					b.Error(err)
					return
				}
				if len(res.Data) != f.size {
					b.Errorf("got %d bytes, want %d", len(res.Data), f.size)
				}
			}
			name := fmt.Sprintf("%s/window=%d", f.name, window)
			b.Run(name+"/serial", func(b *testing.B) {
				b.SetBytes(int64(f.size))
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					get(b)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transfers/s")
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.SetBytes(int64(f.size))
				b.ReportAllocs()
				b.SetParallelism(8)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						get(b)
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transfers/s")
			})
		}
	}
	if st := srv.Stats(); st.TransfersFailed != 0 {
		b.Errorf("stats = %+v", st)
	}
}
