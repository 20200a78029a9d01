package tracker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/procfs"
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

// BindCgroup binds a cgroup (its hierarchy id, 0 for the unified one, and
// the inode number of its directory) to container id: from then on a
// process without a contid that is moved into it, or created in it with
// clone3(CLONE_INTO_CGROUP), gets id in the kernel, and a KindJoin event
// (for a move) or a fork event with JoinedCgroup reports it. The binding is
// pinned with the contid map.
func (t *Tracker) BindCgroup(hierarchy uint32, ino uint64, id contid.ID) error {
	k := trackerCgKey{Hierarchy: hierarchy, Id: ino}
	v := uint64(id)
	if err := t.objs.ContidCgroups.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("tracker: bind cgroup %d:%d to %d: %w", hierarchy, ino, uint64(id), err)
	}
	return nil
}

// UnbindContid removes every cgroup binding of container id.
func (t *Tracker) UnbindContid(id contid.ID) error {
	var (
		k    trackerCgKey
		v    uint64
		dead []trackerCgKey
	)
	it := t.objs.ContidCgroups.Iterate()
	for it.Next(&k, &v) {
		if v == uint64(id) {
			dead = append(dead, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("tracker: list cgroup bindings: %w", err)
	}
	for i := range dead {
		if err := t.objs.ContidCgroups.Delete(&dead[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("tracker: unbind cgroup of %d: %w", uint64(id), err)
		}
	}
	return nil
}
