// Package faults holds stagehand's fault-injection tests: the real
// binary is killed (SIGKILL) or stopped (SIGTERM) in the middle of an
// import, of a rack of installs, or of a download, restarted, and the
// store is checked for what must survive. They need no root and no VM:
// the server listens on loopback with DHCP off.
package faults
