package tracker

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ensureBPFFS mounts bpffs at /sys/fs/bpf when nothing is mounted there and
// creates dir, which must be on a bpf filesystem.
func ensureBPFFS(dir string) error {
	if !isFS(bpffsRoot, unix.BPF_FS_MAGIC) {
		if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("tracker: mount bpffs at %s: %w", bpffsRoot, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tracker: pin dir: %w", err)
	}
	if !isFS(dir, unix.BPF_FS_MAGIC) {
		return fmt.Errorf("tracker: pin dir %s is not on a bpf filesystem: %w", dir, unix.EINVAL)
	}
	return nil
}

// ensureTracefs mounts tracefs when it is not mounted; the syscall
// tracepoints need it. It must run before the first link.Tracepoint of the
// process, which remembers where tracefs was.
func ensureTracefs() error {
	if isFS(tracefsRoot, unix.TRACEFS_MAGIC) || isFS("/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC) {
		return nil
	}
	if err := unix.Mount("nodev", tracefsRoot, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracker: mount tracefs at %s: %w", tracefsRoot, err)
	}
	return nil
}

func isFS(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}
