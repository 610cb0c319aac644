// Package events is the one path every event takes from a protocol to the
// inventory and on to whoever watches.
//
//	DHCP reply ─┐
//	TFTP end  ──┼─ Recorder.Record ─▶ queue ─▶ committer ─▶ Store.AddEvents (one commit per batch)
//	HTTP step ──┘   (never blocks)    (bounded)                    │
//	                                                               ▼
//	state changes (BeginInstall, FetchUserData, Complete, …) ─▶ commit
//	                                                               │ Options.OnEvents, after commit
//	                                                               ▼
//	                                                     Hub.Publish ─▶ Subscription ─▶ GET /api/v1/events
//
// A Recorder takes informational events (a DHCP reply, a TFTP transfer, an
// artifact download) from the protocols' hot paths: Record puts the event
// on a bounded queue and returns; a single committer hands whatever has
// queued to the store in one commit. A full queue drops the event and
// counts it, so a read loop never waits on storage, and the count is
// exported as stagehand_events_dropped_total.
//
// State-changing writes (an install attempt starting, user-data served,
// the completion callback) stay synchronous in the inventory and record
// their own events in their transactions. Every committed event, whichever
// path wrote it, reaches the Hub through the store's OnEvents feed, and
// the Hub fans it out to subscribers, each with its own bounded buffer: a
// subscriber that cannot keep up loses events (and is told how many), the
// committer never waits for it.
package events
