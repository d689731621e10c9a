package pluginhost

import "syscall"

// childSysProcAttr makes the kernel SIGKILL the plugin when the node dies
// (the sdk's parent watch covers the other systems and the corner cases).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// fileIdentity returns what changes whenever a file's content may have:
// device, inode, size, modification and status-change times. A rewrite in
// place changes the times (ctime cannot be set back by a user), a
// replacement the inode.
func fileIdentity(path string) (fileID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}, true
}
