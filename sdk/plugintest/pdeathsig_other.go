//go:build !linux

package plugintest

import "os/exec"

// setParentDeathSignal is a no-op where Pdeathsig does not exist; the sdk's
// parent watch still ends the plugin.
func setParentDeathSignal(*exec.Cmd) {}
