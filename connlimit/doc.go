// Package connlimit bounds the TCP connections a listener hands to a
// server: so many per source address and so many in all. Firmware has no
// credentials, so the machine port answers anyone on the provisioning
// network; without a bound, one laptop holding idle connections uses
// every descriptor the process has (accept4: too many open files) and
// stops the rack and the operator alike.
//
// The decision is made in Accept, before the server spawns a handler: a
// connection over its address's cap is reset at once (SO_LINGER 0) and
// counted. At the total, the idle connection (waiting for its first
// request, or between keep-alive requests) of the address holding the
// most is closed to make room, so idle strangers never lock out a
// machine arriving from a fresh address; only when every connection is
// busy with a request is the newcomer refused. Requests in progress
// (an artifact download, the operator's event stream) are never cut.
//
// Connections from the server's own host (the remote address equals the
// local one) and from addresses that presented the operator token
// (Limiter.Trust) are trusted: no per-address cap, and a reserve above
// the total that strangers cannot use, so the operator API answers while
// strangers hold the machine limits.
//
// The limiter knows connection states from http.Server.ConnState; wire
// Limiter.ConnState there.
package connlimit
