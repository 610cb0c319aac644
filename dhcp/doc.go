// Package dhcp answers network-booting x86 hosts over DHCPv4.
//
// It runs in one of two modes:
//
//   - ModeProxy (proxyDHCP, PXE spec 2.1 §2.2.5, RFC 4578): another DHCP
//     server on the network hands out addresses; stagehand only tells PXE
//     clients what to boot. A DHCPDISCOVER on port 67 gets a DHCPOFFER with
//     yiaddr 0.0.0.0, option 60 "PXEClient" and the boot file. Firmware that
//     treats that offer as a "BINL" offer (OVMF, iPXE) then sends a
//     DHCPREQUEST to port 4011 and gets a DHCPACK with the same boot
//     information. Non-PXE clients never get an answer.
//   - ModeFull: stagehand is the only DHCP server on an isolated network.
//     It allocates addresses from ranges, stores leases through a
//     LeaseStore before acknowledging them (RFC 2131 §4.3.2: an ACK is a
//     promise the server must keep across a restart), and adds the boot
//     options for PXE clients. Non-PXE clients get an address and nothing to
//     boot. A range in ServerIP's subnet serves the local segment; a range
//     in another subnet serves hosts behind a relay agent there: a relayed
//     request is served from the subnet holding its giaddr, or the one
//     RFC 3527's link selection sub-option names (RFC 2131 §4.3.1), with
//     that subnet's options 1, 3 and 6, and the reply goes to the relay.
//     Ranges are grouped by subnet, one pool per subnet; a lease's subnet
//     is the one its address is in.
//
// The boot chain it serves:
//
//	firmware PXE, BIOS (arch 0)     → TFTP BIOSFile (undionly.kpxe)
//	firmware PXE, UEFI (arch 6/7/9) → TFTP EFIFile (snponly.efi)
//	UEFI HTTP boot (arch 16)        → http://server/tftp/EFIFile
//	iPXE (user class "iPXE")        → http://server/boot.ipxe
//
// iPXE asks again after it has been chainloaded; it must get the script and
// never the binary, or it chainloads itself forever.
//
// In full mode an optional Hosts (the inventory, through cmd/stagehand)
// adds two rules, both decided per packet so an operator's change applies
// at once:
//
//   - Reservations (dnsmasq's dhcp-host): a host with a reserved address
//     is always offered and ACKed that address, also when the pool is
//     exhausted, and no other client is offered it or ACKed it. The
//     address may lie outside the ranges but must be in the subnet the
//     request comes from (else the host is served from that subnet's
//     pool, with a warning). A client
//     that leased an address before it was reserved keeps it until its
//     next REQUEST, which is NAKed; leases on reserved addresses of other
//     hosts are not restored at start.
//   - Unknown clients (not in the inventory, --unknown-hosts discover)
//     may hold only Config.UnknownShare percent of each subnet's ranges, so random
//     MACs cannot starve known hosts. Refused DISCOVERs get no answer, are
//     counted (Stats.UnknownCapped, Stats.PoolExhausted) and logged at
//     most once a minute.
//
// A stranger on the network can send any packet with any MAC, so the
// server believes only what it can check:
//
//   - A relayed request (giaddr set) is answered only when giaddr is in
//     Config.TrustedRelays (none by default), or in full mode inside a
//     relayed range's subnet: the reply goes to giaddr. A giaddr on the
//     local subnet is not trusted by the range (a sender there could
//     name a neighbour), and in full mode one whose subnet no range
//     serves is dropped.
//   - A reply goes to ciaddr only as an ACK to a RENEWING or REBINDING
//     REQUEST for that same address (RFC 2131 §4.1, §4.3.2); every other
//     reply not relayed is broadcast.
//   - A RELEASE is accepted only unicast from the address it releases
//     (§4.4.4), not relayed; a DECLINE passes the Policy and only for the
//     client's pending offer or a lease ACKed in the last 10 s, and one MAC
//     keeps at most two addresses in quarantine (declined addresses of
//     unknown clients count against their share). Anything else leaves
//     the stored lease and the pool alone.
//   - In proxy mode the Policy runs before OnSiteAddress hears of an
//     overheard REQUEST, so a refused MAC cannot write the address table.
//
// The package parses packets with github.com/insomniacslk/dhcp/dhcpv4 but
// owns its read loop: a bounded set of workers per socket, one Serve per
// socket, every packet size-checked, parsed once and classified by the pure
// function Classify. Which hosts get an answer at all is decided by a
// Policy supplied by the caller; the package itself knows nothing of the
// inventory.
package dhcp
