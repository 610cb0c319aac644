package tftp

import (
	"fmt"
	"io"
)

// readAhead is how many file bytes one ReadAt fetches. A profile of 50
// lock-step clients fetching ipxe.efi put 15% of the server's CPU in one
// pread per 1468-byte block; one pread per 64 KiB (44 blocks) makes that
// cost vanish, and 64 KiB per transfer stays small at MaxTransfers.
const readAhead = 64 << 10

// blockReader hands out the payloads of a file's blocks from a read-ahead
// buffer. Blocks are numbered from 1 as in sendFile; a retransmitted block
// still in the buffer costs no read.
type blockReader struct {
	f     File
	size  int64
	bs    int64
	chunk int64  // blocks per fill
	buf   []byte // pooled, holds blocks first .. first+n-1
	first int64  // 0: empty
	n     int64
}

// newBlockReader sizes the read-ahead for blksize bs and a window of w
// blocks: a whole number of windows when one fits, so a window rarely
// straddles two fills.
func newBlockReader(f File, size int64, bs, w int) *blockReader {
	chunk := max(1, readAhead/bs)
	if w > 1 && w <= chunk {
		chunk -= chunk % w
	}
	return &blockReader{f: f, size: size, bs: int64(bs), chunk: int64(chunk)}
}

// block returns the payload of block b, 1-based: bs bytes, fewer for the
// last block, none for the empty block that ends a file whose size is a
// multiple of bs. The slice is valid until the next call or release.
func (r *blockReader) block(b int64) ([]byte, error) {
	off := (b - 1) * r.bs
	if b < 1 || off > r.size {
		return nil, fmt.Errorf("tftp: block %d beyond the end of a %d-byte file", b, r.size)
	}
	n := min(r.bs, r.size-off)
	if n == 0 {
		return nil, nil
	}
	if r.first == 0 || b < r.first || b >= r.first+r.n {
		if err := r.fill(b); err != nil {
			return nil, err
		}
	}
	start := (b - r.first) * r.bs
	return r.buf[start : start+n], nil
}

// fill reads the chunk that starts at block b.
func (r *blockReader) fill(b int64) error {
	if r.buf == nil {
		bp := getBuf(&chunkPool, int(r.chunk*r.bs))
		r.buf = *bp
	}
	off := (b - 1) * r.bs
	want := min(r.chunk*r.bs, r.size-off)
	got, err := r.f.ReadAt(r.buf[:want], off)
	if int64(got) < want {
		r.first = 0
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("tftp: read at %d: %w", off, err)
	}
	r.first = b
	r.n = (want + r.bs - 1) / r.bs
	return nil
}

// release returns the buffer to the pool.
func (r *blockReader) release() {
	if r.buf != nil {
		b := r.buf
		chunkPool.Put(&b)
		r.buf, r.first = nil, 0
	}
}
