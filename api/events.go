package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stagehand-dev/stagehand/inventory"
)

// defaultHeartbeat is how often an idle event stream gets a bare newline.
const defaultHeartbeat = 15 * time.Second

// streamBuffer is how many events one stream may fall behind the store
// before it loses some (and is told how many).
const streamBuffer = 1024

// streamWriteTimeout bounds one write to a stream's client: a client
// that stops reading ends its stream instead of holding a goroutine.
const streamWriteTimeout = 30 * time.Second

// eventStream is GET /api/v1/events: newline-delimited StoredEvent JSON.
//
//	?mac=MAC            that host's stored events, oldest first, then the end
//	?mac=MAC&follow=1   the same, then its events as they are committed
//	?follow=1           every host's events as they are committed
//
// MAC may be any of a host's MACs; events are on the host's own MAC. A
// followed stream gets "\n" after each quiet Heartbeat, and ends when the
// client goes away or the server shuts down (the Feed is closed).
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	follow, err := parseFollow(q["follow"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "validation", err.Error())
		return
	}
	if len(q["mac"]) > 1 {
		writeError(w, http.StatusBadRequest, "validation", "mac: give one MAC at most")
		return
	}
	raw := q.Get("mac")
	if raw == "" && !follow {
		writeError(w, http.StatusBadRequest, "validation", "mac is required without follow")
		return
	}
	if follow && s.cfg.Feed == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server has no live event feed")
		return
	}
	key := ""
	if raw != "" {
		mac, err := inventory.NormalizeMAC(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, "validation", fmt.Sprintf("mac %q: %v", raw, err))
			return
		}
		if key, err = s.cfg.Store.Resolve(mac); err != nil {
			writeStoreError(w, err)
			return
		}
	}
	// Subscribe before reading the history, so that nothing committed in
	// between is missed; what both hold is sent once (see skipSet).
	var live <-chan inventory.StoredEvent
	if follow {
		sub := s.cfg.Feed.Subscribe(key, streamBuffer)
		defer sub.Close()
		live = sub.C
	}
	var stored []inventory.Event
	if key != "" {
		if stored, err = s.cfg.Store.Events(key); err != nil {
			writeStoreError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	st := &stream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
	for _, e := range stored {
		if st.send(inventory.StoredEvent{MAC: key, Event: e}) != nil {
			return
		}
	}
	if !follow {
		return
	}
	st.follow(r, live, newSkipSet(stored), s.cfg.Heartbeat)
}

// parseFollow accepts follow=1/true (and 0/false, or none).
func parseFollow(v []string) (bool, error) {
	if len(v) == 0 {
		return false, nil
	}
	if len(v) > 1 {
		return false, errors.New("follow: give it once")
	}
	switch v[0] {
	case "1", "true":
		return true, nil
	case "0", "false", "":
		return false, nil
	}
	return false, fmt.Errorf("follow %q: want 1 or 0", v[0])
}

// stream writes one event stream's lines.
type stream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
}

func (st *stream) send(e inventory.StoredEvent) error {
	st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return st.enc.Encode(e) // one line: Encode ends it with "\n"
}

func (st *stream) flush() error {
	st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return st.rc.Flush()
}

// follow copies live events to the client until it goes away, the feed
// closes, or a write fails. It flushes once the feed has nothing more
// waiting, so a burst goes out in few packets.
func (st *stream) follow(r *http.Request, live <-chan inventory.StoredEvent, skip skipSet, heartbeat time.Duration) {
	if st.flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-live:
			if !ok {
				return
			}
			if skip.take(e) {
				continue
			}
			if st.send(e) != nil {
				return
			}
			if len(live) == 0 && st.flush() != nil {
				return
			}
			tick.Reset(heartbeat)
		case <-tick.C:
			st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := st.w.Write([]byte("\n")); err != nil || st.flush() != nil {
				return
			}
		}
	}
}

// skipSet holds the stored events a follow stream has sent already: an
// event committed between Subscribe and the history read is in both, and
// is sent once. Events are told apart by all their fields; two identical
// events of one commit are both in the history or neither, so counting
// them is exact.
type skipSet map[eventKey]int

type eventKey struct {
	ns      int64
	kind    string
	attempt int
	detail  string
}

func keyOf(e inventory.Event) eventKey {
	return eventKey{e.Time.UnixNano(), e.Kind, e.Attempt, e.Detail}
}

func newSkipSet(stored []inventory.Event) skipSet {
	s := skipSet{}
	for _, e := range stored {
		s[keyOf(e)]++
	}
	return s
}

// take reports whether e was sent with the history, forgetting it.
func (s skipSet) take(e inventory.StoredEvent) bool {
	k := keyOf(e.Event)
	if s[k] == 0 {
		return false
	}
	s[k]--
	return true
}
