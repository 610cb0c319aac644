// Package arch holds no code: its test checks that every stagehand
// package imports only the stagehand packages that docs/ARCHITECTURE.md's
// table allows it, so the map of the house and the house agree.
package arch
