package tracker

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/procfs"
)

// BindCgroupsOf binds every cgroup that holds process tgid alone to id
// (see cgroups.go) and returns how many it bound.
func (t *Tracker) BindCgroupsOf(tgid int32, id contid.ID) (int, error) {
	lines, err := procfs.Host.Cgroups(tgid)
	if err != nil {
		return 0, err
	}
	mounts, err := procfs.Host.CgroupMounts()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range lines {
		dir := cgroupDir(l, mounts)
		if dir == "" {
			continue
		}
		procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || !onlyMember(string(procs), tgid) {
			continue
		}
		fi, err := os.Stat(dir)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		if err := t.BindCgroup(l.Hier, st.Ino, id); err != nil {
			return n, err
		}
		t.log.Debug("cgroup bound to container", "contid", id, "hierarchy", l.Hier, "cgroup", dir, "ino", st.Ino)
		n++
	}
	return n, nil
}
