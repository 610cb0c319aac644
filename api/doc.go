// Package api is stagehand's HTTP surface: the machine endpoints that
// iPXE and the installer call during a boot (scripts, artifacts,
// user-data, callbacks), and the operator API under /api/v1 that the CLI
// drives. Machine endpoints carry no operator auth; what protects them
// is that every secret they hand out is bound to one live install
// attempt by an unguessable token, and that the token is handed out only
// to the host: stage 2 serves a MAC only to an address that package
// attrib has evidence for (a lease, an overheard DHCP exchange, the
// kernel's neighbour entry; Config.MACBinding), and with
// Config.BindUserDataToIP the user-data goes only to the address that
// passed stage 2. A refusal on a machine endpoint carries only its status
// text (refuse.go): the reason goes to the debug log and the host's events,
// never to whoever asked.
package api
