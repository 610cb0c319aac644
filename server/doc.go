// Package server is stagehand's wiring: it builds the DHCP, TFTP and HTTP
// servers, the event recorder and the live event feed from one Config,
// runs them on listeners the caller opened, and shuts them down in order.
//
//	 ┌──────────── Listeners (opened by the caller) ────────────┐
//	 DHCP :67/:4011        TFTP :69              HTTP :8080
//	     │                    │                       │
//	dhcp.Server          tftp.Server              api.Server
//	     │ OnReplies          │ OnTransfer            │ artifact, localboot, cidata
//	     └──────────┬─────────┴───────────────────────┘
//	                ▼
//	        events.Recorder ──(batches)──▶ inventory.Store ──OnEvents──▶ events.Hub ──▶ /api/v1/events
//
// The caller opens the listeners, or a service manager does and passes
// them by socket activation (InheritedFromEnv; Inherited.Listen binds
// only what was not passed).
//
// One socket it opens itself: the IPv6 router-discovery socket on the
// DHCP interface (package ra), which hosts booted within the last few
// minutes (the DHCP journal's memory, no store I/O) get an answer from.
// It may wait for a link-local address and may find IPv6 off; neither
// stops the server, so it is not among the Listeners.
//
// Attribution (which host a TFTP transfer or an HTTP request comes from)
// goes through one type, attribution, so the evidence it uses can change
// in one place.
//
// Shutdown runs in this order: the protocols stop taking requests (DHCP
// at once; TFTP and HTTP let transfers in flight finish within
// DrainTimeout, and open event streams end), then the recorder commits
// what it holds (within DrainTimeout), then the store closes.
package server
