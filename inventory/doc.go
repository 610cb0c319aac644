// Package inventory is stagehand's record of the rack: hosts, profiles,
// per-host events and DHCP leases.
//
// It is the domain: the host state machine lives here as a pure
// function, Transition, so every place that moves a host (the boot flow,
// operator edits, manifest imports) goes through the same table. The
// Store methods that drive the boot flow (BeginInstall, FetchUserData,
// Complete, Fail, Reprovision) apply a transition and its event in one
// transaction: a reader never sees a host whose state and event history
// disagree.
//
// Storage is behind package storage: records in named collections,
// unique secondary indexes (names, reserved DHCP addresses, other NICs,
// static site addresses) kept in the same transactions, and a change
// feed through which every committed event reaches Options.OnEvents.
// The embedded engine is storage/boltstore (one bbolt file, the only
// importer of bbolt); backup and restore are its file-level features.
// A transaction function may run more than once and has no side
// effects; it reports a request-level refusal (unknown token, wrong
// state, invalid input) through its result, decided before it writes,
// never as the transaction's error, because the engine shares commits
// between concurrent callers (see records.go: write and guarded).
//
// Install tokens are bearer secrets handed to one install attempt, and
// the attempt keeps its token while it is live (see tokens.go). Only
// their SHA-256 is stored; the token itself exists in the stage-2 script,
// the seed, and the installer's memory, and is derived again from a
// per-inventory secret for a repeated script of the same attempt.
package inventory
