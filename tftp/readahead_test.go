package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/stagehand-dev/stagehand/tftp/tftptest"
)

// countingFile is an in-memory File that counts ReadAt calls; cut makes
// the file look shorter than its reported size, as when it is truncated
// during a transfer.
type countingFile struct {
	data  []byte
	cut   int
	reads int
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads++
	end := int64(len(f.data) - f.cut)
	if off >= end {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:end])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *countingFile) Close() error { return nil }

func TestBlockReader(t *testing.T) {
	data := make([]byte, 200_003)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cases := []struct {
		size, bs, window int
		wantChunk        int64
	}{
		{0, 512, 1, 128},
		{1, 512, 1, 128},
		{511, 512, 1, 128},
		{512, 512, 1, 128},
		{513, 512, 4, 128},
		{128 * 512, 512, 16, 128},
		{128*512 + 1, 512, 16, 128},
		{100_003, 1468, 1, 44},
		{100_003, 1468, 4, 44},
		{100_003, 1468, 16, 32},
		{200_003, 1468, 64, 44},
		{200_003, 65464, 1, 1},
		{200_003, 8, 3, 8190},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("size=%d/bs=%d/window=%d", tc.size, tc.bs, tc.window), func(t *testing.T) {
			f := &countingFile{data: data[:tc.size]}
			r := newBlockReader(f, int64(tc.size), tc.bs, tc.window)
			defer r.release()
			if r.chunk != tc.wantChunk {
				t.Errorf("chunk = %d blocks, want %d", r.chunk, tc.wantChunk)
			}
			last := int64(tc.size/tc.bs + 1)
			for b := int64(1); b <= last; b++ {
				got, err := r.block(b)
				if err != nil {
					t.Fatalf("block %d: %v", b, err)
				}
				off := (b - 1) * int64(tc.bs)
				want := data[off:min(off+int64(tc.bs), int64(tc.size))]
				if !bytes.Equal(got, want) {
					t.Fatalf("block %d: got %d bytes, want %d identical bytes", b, len(got), len(want))
				}
			}
			// Sequential access costs one read per chunk holding data.
			dataBlocks := (int64(tc.size) + int64(tc.bs) - 1) / int64(tc.bs)
			if want := int((dataBlocks + r.chunk - 1) / r.chunk); f.reads != want {
				t.Errorf("%d reads for %d blocks, want %d", f.reads, dataBlocks, want)
			}
			// A resend of an earlier block reads it again when it left the buffer.
			if tc.size > 0 {
				got, err := r.block(1)
				if err != nil || !bytes.Equal(got, data[:min(tc.bs, tc.size)]) {
					t.Errorf("block 1 again: %d bytes, %v", len(got), err)
				}
			}
			if _, err := r.block(last + 1); err == nil {
				t.Errorf("block %d past the end: no error", last+1)
			}
			if _, err := r.block(0); err == nil {
				t.Error("block 0: no error")
			}
		})
	}
}

// A file shorter than the size its Handler reported fails the read rather
// than sending short or stale blocks.
func TestBlockReaderShortFile(t *testing.T) {
	data := make([]byte, 10_000)
	f := &countingFile{data: data, cut: 100}
	r := newBlockReader(f, int64(len(data)), 512, 1)
	defer r.release()
	_, err := r.block(1)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	// The failed fill must not leave a half-filled buffer behind.
	if _, err := r.block(2); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("second read: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// A file that turns out shorter than its reported size mid-transfer (it
// was truncated on disk) ends the transfer with ERROR 0 after the blocks
// that could be read, never with stale or short blocks.
func TestTruncatedFileEndsTransfer(t *testing.T) {
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i * 13)
	}
	var log transferLog
	srv := &Server{
		Handler: HandlerFunc(func(string, net.Addr) (File, int64, error) {
			return &countingFile{data: data, cut: 100_000}, int64(len(data)), nil
		}),
		Log:        testLogger(t),
		OnTransfer: log.add,
	}
	addr := testServer(t, srv)
	res, err := (&tftptest.Client{Options: []tftptest.Option{{Name: "blksize", Value: "1468"}, {Name: "windowsize", Value: "4"}}}).Get(addr, "f")
	var re *tftptest.RemoteError
	if !errors.As(err, &re) || errorCode(re.Code) != errUndefined {
		t.Fatalf("err = %v, want ERROR 0", err)
	}
	// One read-ahead of 44 blocks succeeded; the next one came up short.
	if want := data[:44*1468]; !bytes.Equal(res.Data, want) {
		t.Errorf("received %d bytes before the ERROR, want the first %d", len(res.Data), len(want))
	}
	if tr := log.wait(t, 1)[0]; !errors.Is(tr.Err, io.ErrUnexpectedEOF) {
		t.Errorf("report err = %v, want io.ErrUnexpectedEOF", tr.Err)
	}
	if st := srv.Stats(); st.TransfersFailed != 1 || st.ErrorsSent != 1 {
		t.Errorf("stats = %+v", st)
	}
}
