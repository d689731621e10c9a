package pluginhost

import "syscall"

// childSysProcAttr makes the kernel SIGKILL the plugin when the node dies
// (the sdk's parent watch covers the other systems and the corner cases).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
