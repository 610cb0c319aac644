// Package storage is the boundary between the inventory's rules and the
// engine that keeps its records.
//
// The inventory (package inventory) decides: host states, attempts and
// tokens, import and merge rules, uniqueness. An Engine only keeps bytes:
// records under string keys in a fixed set of named collections, read
// and written in transactions, with an ordered prefix scan. Secondary
// indexes (Unique) are collections too, kept by the domain inside the
// same transactions as the records they index, so an engine needs no
// notion of them. The change feed is Tx.OnCommit: the inventory hangs
// its Options.OnEvents hook off it.
//
// The semantics are the ones an etcd engine can give (etcd's software
// transactional memory, concurrency.STM): a transaction is a read set
// plus a write set that commits atomically, or is run again from the
// start. So a transaction function may run more than once, sees its own
// writes, must have no effect beyond the transaction (no I/O, no channel
// sends, no counters outside it; what it computes it assigns afresh on
// every run), and learns of engine failures from Update's result, not
// from each Get or Put.
//
// Engines may coalesce concurrent Updates into one commit (group
// commit): that is an engine option, never the caller's choice. A
// function that returns an error makes the engine roll back its
// transaction; an engine that coalesces then has to run every other
// function of the group again. So a transaction function returns an
// error only for a failure of the store itself (a record that does not
// decode, a write the engine refused); a request-level refusal (unknown
// token, wrong state, invalid input) is decided before any write and
// reported through the caller's own result variables, with a nil error.
//
// The embedded engine is package boltstore (bbolt, one file). It is the
// only package of the module that imports bbolt.
package storage
