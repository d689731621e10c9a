package plugintest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the plugin if the test dies.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
