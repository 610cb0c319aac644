// Package testbuf holds the one output buffer that tests hand to code
// writing from other goroutines (a server's log, a command's output)
// while the test reads it.
package testbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for one writer and one reader at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
