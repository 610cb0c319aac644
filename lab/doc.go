// Package lab is the harness for stagehand's end-to-end tests: it boots
// real QEMU VMs (software emulation, no KVM) on a bridge inside a network
// namespace that the test creates, so every packet stays on this machine.
//
// The pieces:
//
//   - Artifacts builds (once, cached) a Debian kernel and a busybox
//     initramfs whose /init is an installer stand-in: it loads the NIC
//     modules, takes a DHCP lease, fetches config_url= from the kernel
//     command line, checks the user-data and POSTs the completion callback
//     it names, printing "STANDIN: …" lines on the serial console.
//   - NewNet makes a namespace with a bridge and the server's address;
//     AddTap plugs a VM into it and AddPeer adds another "host" (its own
//     namespace on a veth), e.g. the site's DHCP server in proxyDHCP tests,
//     since two DHCP servers cannot share UDP 67 in one namespace.
//   - ListenIn and ListenPacketIn open sockets inside a namespace from the
//     test process itself: a socket keeps the namespace it was created in,
//     so a Go server in the test can serve the VM.
//   - Start runs a real binary (stagehand, dnsmasq, busybox httpd) in a
//     namespace or in the test's own, its output in a file: WaitReady,
//     WaitOutput, Signal, Kill, StopWithin and Stop drive it by PID. It is
//     the one harness around real binaries; the faults and e2e suites use
//     it too, and MainWithStagehand builds the binary they run.
//   - RunDnsmasqSite runs dnsmasq as a plain DHCP server.
//   - NewRouted builds a routed bench: the VMs on a segment behind a router
//     namespace, the server on another; RunDhcrelay and RunDnsmasqRelay run
//     a real relay agent in the router, RunDnsmasqSiteRemote the site's DHCP
//     server for the bench's subnet.
//   - SetLoss drops a share of the frames between the VMs and the server
//     with an nftables bridge rule (the kernel has no netem) and counts them.
//   - StartVM runs QEMU with SeaBIOS (+ the iPXE NIC ROM) or OVMF, with the
//     serial console in a file that WaitFor polls.
//
// Everything a helper starts is stopped by PID in t.Cleanup, and a namespace
// is deleted only after every process left in it has been killed. A failing
// test logs the tail of each VM's serial console and of dnsmasq's log.
//
// The helpers need root, iproute2 and, for VMs, qemu-system-x86, ipxe-qemu
// and ovmf; see README.md. Tests that use them carry the e2e build tag.
package lab
