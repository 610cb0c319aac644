// Package inventory is stagehand's record of the rack: hosts, profiles,
// per-host events and DHCP leases, kept in one bbolt file.
//
// The host state machine (see DESIGN.md) lives here as a pure function,
// Transition, so every place that moves a host goes through the same
// table. The Store methods that drive the boot flow (BeginInstall,
// FetchUserData, Complete, Fail, Reprovision) apply a transition and its
// event in one bbolt transaction: a reader never sees a host whose state
// and event history disagree.
//
// Install tokens are bearer secrets handed to one install attempt. Only
// their SHA-256 is stored; the token itself exists in the stage-2 script
// and in the installer's memory, nowhere else.
package inventory
