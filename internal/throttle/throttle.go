// Package throttle spaces out what a flood would otherwise repeat: the
// one warning a minute that the DHCP, TFTP and discovery refusals log
// while their counters count every refusal (Every), and the bounded
// memory of when each key last happened (Recent).
package throttle

import (
	"sync/atomic"
	"time"
)

// Every lets an action through at most once per interval. The zero value
// lets the first one through; safe for concurrent use.
type Every struct {
	last atomic.Int64 // Unix nanoseconds of the last action let through
}

// Allow reports whether the action may happen at now (interval or more
// after the last one let through), and if so stamps now. Of concurrent
// callers at most one is let through.
func (e *Every) Allow(now time.Time, interval time.Duration) bool {
	l, n := e.last.Load(), now.UnixNano()
	return n-l >= int64(interval) && e.last.CompareAndSwap(l, n)
}
