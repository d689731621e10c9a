//go:build !linux

package pluginhost

import "syscall"

// childSysProcAttr: Pdeathsig is Linux-only; elsewhere the sdk's parent
// watch ends an orphaned plugin.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// fileIdentity is not available here: every launch hashes the binary.
func fileIdentity(string) (fileID, bool) { return fileID{}, false }
