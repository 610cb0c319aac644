// Package attrib answers two questions about a network-boot client: who
// is at this address (MACAt: to put a TFTP transfer or an artifact
// download on the right host's record), and is there evidence that this
// MAC is at this address (Vouch: before stage 2 hands a host's install
// script, and with it a user-data token, to whoever asked).
//
// # Order of evidence
//
// Evidence is consulted best first, and the first source that names the
// address answers:
//
//  1. SourceLease: a DHCP lease this server granted (full mode, relayed or
//     not). The lease table knows MAC → address exactly; the ACK is sent
//     only once the lease is durable, so the table is never behind the
//     host.
//  2. SourceDHCP: an overheard or answered DHCP exchange that names the
//     address (proxy mode: the client's REQUEST to the site's server,
//     option 50, or an ACK this server sent with an address).
//  3. SourceNeighbour: the kernel's neighbour (ARP) entry for the address
//     on the serving interface. An on-link client cannot talk TCP or TFTP
//     to the server without being resolved there; a client behind a router
//     never appears under its own address, and an entry on another
//     interface (a management network) does not count.
//
// A fourth source, SourceClaim, is a stage-2 request naming a MAC that was
// served. It helps MACAt attribute the host's later downloads, but it
// proves nothing: Vouch never accepts it, or whoever asked first would
// vouch for themselves.
//
// # What it binds against
//
// Vouch stops a stranger off the host's segment, or on it but passive,
// from naming a known MAC (MACs are broadcast in every DHCP exchange and
// often sequential in a rack) and getting that host's secrets. It does
// not stop an attacker on the segment who forges DHCP frames or answers
// ARP with the host's MAC: Layer 2 is trusted as far as the switch trusts
// it (DHCP snooping and dynamic ARP inspection are the switch's job).
//
// # Memory and concurrency
//
// Observations are kept per address and source, newest wins, for TTL;
// at most Max addresses are remembered, the oldest evicted first, so a
// flood of strangers only evicts. Lookups do no storage I/O: leases come
// from an in-memory mirror (LeaseTable) the wiring keeps in step with the
// store, and the kernel table is a file read. An Index is safe for
// concurrent use.
package attrib
