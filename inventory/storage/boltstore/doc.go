// Package boltstore is the embedded storage engine: one bbolt file, a
// bucket per collection, JSON values written by the inventory.
//
// It is the only package of the module that imports bbolt. Besides the
// storage.Engine it owns what is bbolt-specific about the file itself:
// the length check that keeps a truncated file from crashing the
// process when mapped (checkLength), the page-level consistency check
// of a backup (Verify), and replacing a data dir's file with a backup
// (Replace).
//
// Writes are group-committed: Updates that arrive while a commit is in
// flight all go into the next transaction, so N concurrent writers
// (DHCP workers waiting for durable leases, installers calling back)
// share one fsync. A write to an idle store commits at once; under load
// the next group gathers only for the rest of a short window after the
// previous commit (Options.Window, 2 ms), where bbolt's own Batch waits
// a fixed 10 ms on every write, which with a bounded number of DHCP
// workers capped the ACK rate (docs/bench/dhcp.md); without any window a
// rack powering on made one commit per write (docs/bench/rack.md). A
// function that returns
// an error before it wrote anything fails alone: the group goes on
// without it. Only a function that wrote and then failed (a storage
// failure, by the storage package's rule) makes the group roll back;
// the others then run again without it, and it runs alone to get its
// own error.
package boltstore
