package events

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/stagehand-dev/stagehand/inventory"
	"github.com/stagehand-dev/stagehand/metrics"
)

// KindDropped is the Kind of the marker a Subscription delivers in place
// of events it lost; its Detail is "N events dropped" and its MAC is "".
const KindDropped = "dropped"

// Hub fans committed events out to live subscribers. Publish is its
// input (inventory.Options.OnEvents); it never blocks: a subscriber whose
// buffer is full loses the event, counted, and is told before the next
// event it gets.
//
// Order: Publish calls are serialised, and every subscriber receives
// events in the order they were published (one call's slice in its
// order), so all subscribers agree on one order of all hosts' events;
// they differ only in where a slow one lost some. Events arrive in
// commit order: the store's engine publishes each commit's events before
// it starts the next commit (storage.Tx.OnCommit), so two commits on one
// host within microseconds of each other (the recorder's batch and a
// callback) are published in the order they were stored.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool

	published atomic.Uint64
	lost      atomic.Uint64
}

// NewHub returns a Hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription is one subscriber's view of the stream. C is closed when
// the subscription or its Hub is closed.
type Subscription struct {
	C <-chan inventory.StoredEvent

	c    chan inventory.StoredEvent
	hub  *Hub
	mac  string // "" for every host
	lost uint64 // guarded by hub.mu; not yet reported to the subscriber
	once sync.Once
}

// Subscribe starts a subscription to mac's events (a host's own MAC, as
// the store records them; "" for every host) with room for buffer events
// (at least 2) that the subscriber has not read yet. A Subscription of a
// closed Hub has its channel closed at once.
func (h *Hub) Subscribe(mac string, buffer int) *Subscription {
	buffer = max(buffer, 2) // an event and the marker of a loss before it
	c := make(chan inventory.StoredEvent, buffer)
	s := &Subscription{C: c, c: c, hub: h, mac: mac}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.once.Do(func() { close(c) })
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Close ends the subscription and closes C. Safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs, s)
	s.once.Do(func() { close(s.c) })
}

// Publish delivers committed events to every matching subscriber without
// waiting for any. It has the shape of inventory.Options.OnEvents.
func (h *Hub) Publish(evs []inventory.StoredEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published.Add(uint64(len(evs)))
	for s := range h.subs {
		for _, e := range evs {
			if s.mac == "" || s.mac == e.MAC {
				s.offer(e)
			}
		}
	}
}

// offer sends e, first reporting any loss, or counts it as lost. Called
// with hub.mu held.
func (s *Subscription) offer(e inventory.StoredEvent) {
	if s.lost > 0 {
		marker := inventory.StoredEvent{Event: inventory.Event{Time: e.Time, Kind: KindDropped, Detail: fmt.Sprintf("%d events dropped", s.lost)}}
		select {
		case s.c <- marker:
			s.lost = 0
		default:
			s.lost++
			s.hub.lost.Add(1)
			return
		}
	}
	select {
	case s.c <- e:
	default:
		s.lost++
		s.hub.lost.Add(1)
	}
}

// Close ends every subscription and refuses new ones (their channels are
// closed at once): a server shutting down ends its open streams this way.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.once.Do(func() { close(s.c) })
	}
}

// Subscribers is the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// WriteMetrics adds the hub's counters to a scrape.
func (h *Hub) WriteMetrics(mw *metrics.Writer) {
	mw.Counter("stagehand_events_published_total", "Committed events handed to live subscribers (event streams).", nil, float64(h.published.Load()))
	mw.Counter("stagehand_events_subscriber_dropped_total", "Events a live subscriber lost because it did not keep up (it is told how many).", nil, float64(h.lost.Load()))
	mw.Gauge("stagehand_events_subscribers", "Open live event subscriptions.", nil, float64(h.Subscribers()))
}
