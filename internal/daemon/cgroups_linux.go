package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/contid/contid/internal/contid"
)

// bindCgroups binds every cgroup that holds process tgid alone to id (see
// cgroups.go) and returns how many it bound.
func (d *Daemon) bindCgroups(tgid int32, id contid.ID) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(int(tgid)) + "/cgroup")
	if err != nil {
		return 0, err
	}
	lines, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return 0, err
	}
	mf, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	mounts, err := parseCgroupMounts(mf)
	mf.Close()
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
		if err := d.tr.BindCgroup(l.hier, st.Ino, id); err != nil {
			return n, fmt.Errorf("daemon: %w", err)
		}
		d.log.Debug("cgroup bound to container", "contid", id, "hierarchy", l.hier, "cgroup", dir, "ino", st.Ino)
		n++
	}
	return n, nil
}
