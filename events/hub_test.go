package events_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stagehand-dev/stagehand/events"
	"github.com/stagehand-dev/stagehand/inventory"
)

func ev(mac string, i int) inventory.StoredEvent {
	return inventory.StoredEvent{MAC: mac, Event: inventory.Event{Time: time.Unix(int64(i), 0), Kind: "k", Detail: fmt.Sprint(i)}}
}

// drain reads what is waiting on s without blocking.
func drain(s *events.Subscription) []inventory.StoredEvent {
	var out []inventory.StoredEvent
	for {
		select {
		case e, ok := <-s.C:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// A subscription for one MAC sees only that host's events, in order; one
// for "" sees all.
func TestHubFilterAndOrder(t *testing.T) {
	h := events.NewHub()
	one, all := h.Subscribe(mac1, 16), h.Subscribe("", 16)
	defer one.Close()
	defer all.Close()
	h.Publish([]inventory.StoredEvent{ev(mac1, 1), ev(mac2, 2)})
	h.Publish([]inventory.StoredEvent{ev(mac1, 3)})
	got1, gotAll := drain(one), drain(all)
	if len(got1) != 2 || got1[0].Detail != "1" || got1[1].Detail != "3" {
		t.Errorf("%s's subscription got %+v", mac1, got1)
	}
	if len(gotAll) != 3 || gotAll[1].MAC != mac2 {
		t.Errorf("the all-hosts subscription got %+v", gotAll)
	}
}

// A subscriber that does not read loses events instead of slowing
// Publish, and is told how many before the next event it gets; another
// subscriber that reads loses nothing.
func TestHubSlowSubscriberLosesAndIsTold(t *testing.T) {
	h := events.NewHub()
	slow, fast := h.Subscribe("", 4), h.Subscribe("", 64)
	defer slow.Close()
	defer fast.Close()
	for i := 1; i <= 10; i++ {
		h.Publish([]inventory.StoredEvent{ev(mac1, i)}) // returns although slow never reads
	}
	got := drain(slow)
	if len(got) != 4 || got[3].Detail != "4" {
		t.Fatalf("slow subscriber holds %+v; want events 1-4", got)
	}
	h.Publish([]inventory.StoredEvent{ev(mac1, 11)})
	got = drain(slow)
	if len(got) != 2 || got[0].Kind != events.KindDropped || got[0].Detail != "6 events dropped" || got[0].MAC != "" || got[1].Detail != "11" {
		t.Fatalf("after the loss: %+v; want the marker for 6 events, then event 11", got)
	}
	if n := len(drain(fast)); n != 11 {
		t.Errorf("the fast subscriber got %d events, want 11", n)
	}
}

// Close ends a subscription; closing the hub ends all and refuses new ones.
func TestHubClose(t *testing.T) {
	h := events.NewHub()
	a, b := h.Subscribe("", 4), h.Subscribe(mac1, 4)
	a.Close()
	a.Close()
	if _, ok := <-a.C; ok {
		t.Fatal("a closed subscription's channel is open")
	}
	if n := h.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers, want 1", n)
	}
	h.Close()
	if _, ok := <-b.C; ok {
		t.Fatal("closing the hub left a subscription open")
	}
	c := h.Subscribe("", 4)
	if _, ok := <-c.C; ok {
		t.Fatal("a subscription to a closed hub is open")
	}
	h.Publish([]inventory.StoredEvent{ev(mac1, 1)}) // no panic on closed channels
	b.Close()
}

// Concurrent publishers and subscribers coming and going (run with -race):
// each subscriber sees each publisher's events in its order.
func TestHubConcurrent(t *testing.T) {
	h := events.NewHub()
	subs := make([]*events.Subscription, 4)
	for i := range subs {
		subs[i] = h.Subscribe("", 4096)
	}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mac := fmt.Sprintf("52:54:00:00:01:%02x", p)
			for i := range 200 {
				h.Publish([]inventory.StoredEvent{ev(mac, i)})
			}
		}()
	}
	wg.Add(1)
	go func() { // churn
		defer wg.Done()
		for range 100 {
			h.Subscribe(mac1, 2).Close()
		}
	}()
	wg.Wait()
	for _, s := range subs {
		last := map[string]int{}
		got := drain(s)
		if len(got) != 800 {
			t.Fatalf("%d events, want 800", len(got))
		}
		for _, e := range got {
			n := int(e.Time.Unix())
			if prev, ok := last[e.MAC]; ok && n != prev+1 {
				t.Fatalf("%s: event %d after %d", e.MAC, n, prev)
			}
			last[e.MAC] = n
		}
		s.Close()
	}
}
