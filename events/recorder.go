package events

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

// Sink commits a batch of events in one transaction, skipping MACs that
// are no host's, and returns how many it recorded. *inventory.Store is
// the Sink in production.
type Sink interface {
	AddEvents([]inventory.HostEvent) (int, error)
}

// Defaults for zero-valued Config fields.
const (
	// DefaultQueue holds a rack's boot storm: 1000 hosts' DHCP, TFTP and
	// artifact events for the length of one slow commit.
	DefaultQueue = 8192
	// DefaultBatch bounds one commit, so a backlog is written in
	// transactions of a size bbolt handles in milliseconds.
	DefaultBatch = 1024
	// DefaultErrorInterval is how often a failing store is logged.
	DefaultErrorInterval = time.Minute
)

// Config tunes a Recorder. Zero values are the defaults above.
type Config struct {
	Sink          Sink // required
	Queue         int
	Batch         int
	ErrorInterval time.Duration
	Log           zerolog.Logger
}

// Stats counts what a Recorder did with the events it was given.
type Stats struct {
	Committed     uint64 // recorded by the store (events of hosts it holds)
	DroppedFull   uint64 // refused because the queue was full
	DroppedClosed uint64 // given after Close
	Failed        uint64 // lost with a commit that failed
}

// Recorder hands events to the store without making the caller wait.
// Record is safe for concurrent use and never blocks on storage: it
// queues, and a committer goroutine (started when the first event of a
// burst arrives, gone when the queue is empty) commits one batch at a
// time. Events are committed in the order Record queued them.
type Recorder struct {
	cfg Config
	q   chan inventory.HostEvent

	mu      sync.Mutex
	running bool
	idle    chan struct{} // closed when the committer has emptied the queue
	closed  atomic.Bool

	committed, droppedFull, droppedClosed, failed atomic.Uint64

	lastErrLog atomic.Int64 // unix nanoseconds of the last logged commit error
}

// NewRecorder builds a Recorder. It holds no goroutine until the first
// Record, and none once its queue is empty.
func NewRecorder(cfg Config) *Recorder {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.ErrorInterval <= 0 {
		cfg.ErrorInterval = DefaultErrorInterval
	}
	idle := make(chan struct{})
	close(idle)
	return &Recorder{cfg: cfg, q: make(chan inventory.HostEvent, cfg.Queue), idle: idle}
}

// Record queues an event for the host with mac (its own MAC or another
// NIC's; the store resolves it, and drops MACs that are no host's). It
// returns at once: with the queue full, or after Close, the event is
// dropped and counted. The event keeps the time of this call.
func (r *Recorder) Record(mac, kind, detail string) {
	if r.closed.Load() {
		r.droppedClosed.Add(1)
		return
	}
	select {
	case r.q <- inventory.HostEvent{MAC: mac, Kind: kind, Detail: detail, Time: time.Now()}:
	default:
		r.droppedFull.Add(1)
		return
	}
	r.mu.Lock()
	if !r.running {
		r.running = true
		r.idle = make(chan struct{})
		go r.commit(r.idle)
	}
	r.mu.Unlock()
}

// commit writes batches until the queue is empty, then closes idle.
func (r *Recorder) commit(idle chan struct{}) {
	batch := make([]inventory.HostEvent, 0, r.cfg.Batch)
	for {
		batch = batch[:0]
	gather:
		for len(batch) < r.cfg.Batch {
			select {
			case e := <-r.q:
				batch = append(batch, e)
			default:
				break gather
			}
		}
		if len(batch) > 0 {
			r.write(batch)
			continue
		}
		r.mu.Lock()
		// A Record that queued before this check sees running still
		// true and relies on this loop; one after it starts a new one.
		if len(r.q) == 0 {
			r.running = false
			close(idle)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

func (r *Recorder) write(batch []inventory.HostEvent) {
	n, err := r.cfg.Sink.AddEvents(batch)
	if err == nil {
		r.committed.Add(uint64(n))
		return
	}
	r.failed.Add(uint64(len(batch)))
	// A full disk fails every commit: one line per interval, not per batch.
	now := time.Now().UnixNano()
	last := r.lastErrLog.Load()
	if now-last >= int64(r.cfg.ErrorInterval) && r.lastErrLog.CompareAndSwap(last, now) {
		r.cfg.Log.Error().Err(err).Int("events", len(batch)).Uint64("failedTotal", r.failed.Load()).
			Msg("recording events failed; further failures are logged once per interval and counted in stagehand_events_dropped_total{reason=\"store_error\"}")
	}
}

// Flush waits until every event queued so far has been committed (or
// its commit failed), or until ctx ends.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close refuses further events and waits, within ctx, for the queued
// ones to be committed. Call it after the protocols have stopped and
// before the store closes.
func (r *Recorder) Close(ctx context.Context) error {
	r.closed.Store(true)
	return r.Flush(ctx)
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{
		Committed: r.committed.Load(), DroppedFull: r.droppedFull.Load(),
		DroppedClosed: r.droppedClosed.Load(), Failed: r.failed.Load(),
	}
}

// WriteMetrics adds the recorder's counters to a scrape.
func (r *Recorder) WriteMetrics(mw *metrics.Writer) {
	st := r.Stats()
	mw.Counter("stagehand_events_recorded_total", "Events of inventory hosts committed through the event recorder (DHCP, TFTP, HTTP steps).", nil, float64(st.Committed))
	for _, d := range []struct {
		reason string
		n      uint64
	}{{"queue_full", st.DroppedFull}, {"shutdown", st.DroppedClosed}, {"store_error", st.Failed}} {
		mw.Counter("stagehand_events_dropped_total", "Events not recorded, by reason (queue_full: the recorder's queue was full, the protocol did not wait; store_error: their commit failed).", metrics.L("reason", d.reason), float64(d.n))
	}
	mw.Gauge("stagehand_events_queued", "Events waiting in the recorder's queue for their commit.", nil, float64(len(r.q)))
}
