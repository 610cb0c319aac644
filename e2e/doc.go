// Package e2e holds stagehand's end-to-end tests: real firmware (SeaBIOS
// with the iPXE ROM, OVMF's own PXE client), real iPXE, a real Linux
// kernel and an installer stand-in, booted in QEMU on a bridge inside a
// network namespace, against the real stagehand binary. They carry the
// e2e build tag (they need root and QEMU) and run in `make test` and CI.
package e2e
