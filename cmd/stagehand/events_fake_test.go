package main

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/stagehand-dev/stagehand/inventory"
)

// fakeEvents serves GET /api/v1/events as the contract describes it
// (NDJSON of inventory.StoredEvent; mac= narrows to one host, its stored
// events first; follow=1 stays open for live ones), fed by the store's
// OnEvents. It stands in for the server's real stream, which is built in
// another branch; after the merge the tests should run against that.
type fakeEvents struct {
	st   *inventory.Store
	mu   sync.Mutex
	subs map[chan inventory.StoredEvent]string // subscriber → MAC ("" for all)
	// opened counts followed streams, so a test can wait for a
	// subscriber before it makes events.
	opened chan struct{}
}

func (f *fakeEvents) publish(evs []inventory.StoredEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch, mac := range f.subs {
		for _, e := range evs {
			if mac == "" || mac == e.MAC {
				select {
				case ch <- e:
				default: // a slow subscriber loses events
				}
			}
		}
	}
}

func (f *fakeEvents) wrap(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("GET /api/v1/events", f.serve)
	return mux
}

func (f *fakeEvents) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+cliToken {
		http.Error(w, `{"error":{"code":"unauthorized","message":"missing or wrong bearer token"}}`, http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	mac, follow := q.Get("mac"), q.Get("follow") == "1"
	if mac != "" {
		key, err := f.st.Resolve(mac)
		if err != nil {
			http.Error(w, `{"error":{"code":"not_found","message":"host not found"}}`, http.StatusNotFound)
			return
		}
		mac = key
	} else if !follow {
		http.Error(w, `{"error":{"code":"validation","message":"mac is required without follow"}}`, http.StatusBadRequest)
		return
	}
	ch := make(chan inventory.StoredEvent, 64)
	if follow {
		f.mu.Lock()
		if f.subs == nil {
			f.subs = map[chan inventory.StoredEvent]string{}
		}
		f.subs[ch] = mac
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		}()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	if mac != "" {
		evs, _ := f.st.Events(mac)
		for _, e := range evs {
			enc.Encode(inventory.StoredEvent{MAC: mac, Event: e})
		}
	}
	w.(http.Flusher).Flush()
	if !follow {
		return
	}
	if f.opened != nil {
		f.opened <- struct{}{}
	}
	w.Write([]byte("\n")) // a heartbeat, which clients skip
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-ch:
			enc.Encode(e)
			w.(http.Flusher).Flush()
		}
	}
}
