package tracker

import (
	"slices"
	"strconv"
	"strings"

	"github.com/contid/contid/internal/source/procfs"
)

// A process exec'd into a running container (runc exec, crun exec) does
// not descend from the container's init; it joins the container because
// the runtime moves it into the container's cgroups. So a registration
// binds the cgroups that hold the registered process alone — the ones a
// runtime made for the container — to its contid (BindCgroup), and
// the kernel tags a process moved into them. A cgroup shared with other
// processes (contid exec's child in its shell's cgroup) is never bound.

// cgroupDir returns the directory of l's cgroup, or "" when its
// hierarchy is not mounted (or l is a hierarchy's root, never bound).
func cgroupDir(l procfs.Cgroup, mounts []procfs.CgroupMount) string {
	if l.Path == "/" || strings.Contains(l.Path, "/../") || strings.HasSuffix(l.Path, "/..") {
		return ""
	}
	for _, m := range mounts {
		if (l.Hier == 0) != m.V2 {
			continue
		}
		if m.V2 || sameSet(l.Ctrls, m.Ctrls) {
			return m.Dir + l.Path
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// onlyMember reports whether cgroup.procs lists exactly pid.
func onlyMember(procs string, pid int32) bool {
	return strings.TrimSpace(procs) == strconv.Itoa(int(pid))
}
