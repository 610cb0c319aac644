package throttle

import "time"

// Recent remembers when each key was last marked, in a bounded map: a
// flood of new keys costs at most Max entries. Past Max, marking forgets
// the keys marked Window or longer ago, or every key if none is that
// old, so a key marked within Window may be forgotten only under such a
// flood. The zero value with Window and Max set is ready; not safe for
// concurrent use (the caller holds its own lock).
type Recent[K comparable] struct {
	Window time.Duration
	Max    int
	at     map[K]time.Time
}

// Mark records that k happened at now.
func (r *Recent[K]) Mark(k K, now time.Time) {
	if r.at == nil {
		r.at = make(map[K]time.Time)
	}
	if len(r.at) >= r.Max {
		for k, t := range r.at {
			if now.Sub(t) >= r.Window {
				delete(r.at, k)
			}
		}
		if len(r.at) >= r.Max {
			clear(r.at)
		}
	}
	r.at[k] = now
}

// Last reports when k was last marked, if it is remembered.
func (r *Recent[K]) Last(k K) (time.Time, bool) {
	t, ok := r.at[k]
	return t, ok
}

// Len is how many keys are remembered.
func (r *Recent[K]) Len() int { return len(r.at) }
