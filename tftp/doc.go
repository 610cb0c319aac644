// Package tftp is a read-only TFTP server for network boot: it hands PXE
// firmware and iPXE their boot binaries (undionly.kpxe, snponly.efi,
// ipxe.efi).
//
// # Flow
//
// The caller opens the listening UDP socket (port 69 in production) and
// passes it to Server.Serve. The read loop parses each datagram as a request
// (RFC 1350 section 5). A write request is refused with ERROR 2; a malformed
// packet is dropped and counted in Stats.BadPackets. A read request over the
// MaxTransfers or MaxPending cap takes the slot of the oldest transfer whose
// client has not answered yet (slots.go); when every slot is held by a client
// that answered, it gets ERROR 0 from the listening socket. Every other read
// request gets a goroutine and a new UDP socket bound to the listening IP and
// connected to the client: its port is the server's transfer ID (RFC 1350
// section 4), and the kernel drops packets from anyone else.
//
// The transfer asks the Handler to open the file (Dir serves a directory,
// confined by os.Root), then negotiates options:
//
//   - RFC 2347: recognised options are acknowledged in an OACK and DATA 1
//     is sent only after the client's ACK 0. Unknown or malformed options
//     are left out of the OACK; with none left, the transfer starts at once
//     with 512-byte blocks, as in RFC 1350.
//   - RFC 2348 blksize: 8 and up, clamped to Server.MaxBlockSize (1468 by
//     default, so a block fits a 1500-byte Ethernet frame unfragmented).
//   - RFC 2349 timeout (1-255 s, echoed unchanged, replaces Server.Timeout)
//     and tsize (answered with the file size; PXE ROMs often read it and
//     abort with an ERROR, then request the file again).
//   - RFC 7440 windowsize: 1-65535, clamped to Server.MaxWindowSize (64).
//
// Data goes out a window at a time. The client's ACK for the last block of a
// window, or for any block inside it, moves the window to the block after
// it. A duplicate or stale ACK is ignored rather than answered, so a delayed
// ACK cannot double the traffic (the Sorcerer's Apprentice bug, RFC 1123
// 4.2.3.1); only the retransmission timer resends. The timer is the
// negotiated timeout, doubling after two resends of the same packet up to
// 8 s; a transfer is abandoned only when it made no progress for
// Server.MaxIdle (30 s) and Server.Retries resends, so a client on a lossy
// link is carried through long runs of lost ACKs while a dead one frees its
// slot within about 33 s. The OACK is resent when the client repeats its
// RRQ, and on the server's own timer only after MaxIdle/2: atftp aborts on
// a second OACK, and clients resend their RRQ or ACK 0 themselves
// (retry.go has the reasons). Block numbers wrap from 65535 to 0 so files beyond 32 MiB at 512
// bytes per block still transfer. A file ends with a block shorter than
// blksize, zero bytes long when the size is a multiple of it. An ERROR from
// the client ends the transfer quietly.
//
// Only octet mode is served: netascii would rewrite the binaries this
// server exists to deliver, and every boot client sends "octet".
//
// Each transfer reads the file with one ReadAt (pread) per 64 KiB into a
// pooled read-ahead buffer and copies each block into a pooled packet
// buffer, so the per-block path costs one write and no allocation,
// formatting or map lookups; a block resent after it left the read-ahead is
// read again. docs/bench/tftp.md has the profile behind this.
//
// Cancelling Serve's context closes the listening socket, lets transfers in
// flight finish for up to Server.DrainTimeout (a host half-way through its
// iPXE binary would otherwise start over from DHCP), then sends ERROR 0 to
// each client still being served, waits for the transfers and returns nil.
// Server.OnTransfer and Server.Stats expose outcomes for events and metrics.
package tftp
