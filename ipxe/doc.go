// Package ipxe owns everything stagehand knows about iPXE: which binary a
// firmware architecture chainloads, finding those binaries on disk, the
// stage-1 script that collects a host's facts, the stage-2 script that
// installs or boots local disk, and the pure decision between them.
package ipxe
