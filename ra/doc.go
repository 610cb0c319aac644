// Package ra answers IPv6 router solicitations from the hosts stagehand
// is booting, so that iPXE's network configuration ends at once.
//
// iPXE's ifconf (run by a NIC ROM's autoboot and by a chained
// undionly.kpxe or snponly.efi) solicits a router after its DHCP and
// goes on only when an advertisement arrives or its last solicitation
// times out: about 16 s on a link without an IPv6 router (docs/LAB.md
// pitfall 3), on every boot. Staging networks often have none.
//
// The answer configures nothing (RFC 4861 §4.2): router lifetime 0 (not
// a default router), no prefix information, M and O clear, hop limit,
// reachable time and retransmit timer unspecified. It is unicast to the
// soliciting host's link-local address (§6.2.6), so no other host on
// the link sees it, and only a host the Booting callback names gets
// one: its MAC is taken from the solicitation's source link-layer
// address option, else from the EUI-64 interface identifier of its
// source address (iPXE uses EUI-64). A solicitation from the
// unspecified address carries neither (§4.1 forbids the option then),
// so it is not answered.
//
// A link with a real IPv6 router is left to it: an advertisement with a
// non-zero router lifetime from anyone else makes the responder stand
// down until that router's lifetime has run out without a new one. At
// start it sends one solicitation of its own to hear about existing
// routers at once rather than at their next periodic advertisement.
package ra
