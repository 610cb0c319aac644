// Package api is stagehand's HTTP surface: the machine endpoints that
// iPXE and the installer call during a boot (scripts, artifacts,
// user-data, callbacks), and the operator API under /api/v1 that the CLI
// drives. Machine endpoints carry no operator auth; what protects them
// is that every secret they hand out is bound to one live install
// attempt by an unguessable token.
package api
