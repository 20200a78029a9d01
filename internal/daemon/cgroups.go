package daemon

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// A process exec'd into a running container (runc exec, crun exec) does
// not descend from the container's init; it joins the container because
// the runtime moves it into the container's cgroups. So a registration
// binds the cgroups that hold the registered process alone — the ones a
// runtime made for the container — to its contid (tracker.BindCgroup), and
// the kernel tags a process moved into them. A cgroup shared with other
// processes (contid exec's child in its shell's cgroup) is never bound.

// cgLine is one line of /proc/PID/cgroup: hierarchy id, controllers (empty
// for the unified hierarchy, "name=systemd" for a named one) and path.
type cgLine struct {
	hier  uint32
	ctrls []string
	path  string
}

// parseProcCgroup reads /proc/PID/cgroup.
func parseProcCgroup(r io.Reader) ([]cgLine, error) {
	var out []cgLine
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("cgroup line %q: want hierarchy:controllers:path", sc.Text())
		}
		h, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("cgroup line %q: hierarchy id: %w", sc.Text(), err)
		}
		if !strings.HasPrefix(f[2], "/") {
			return nil, fmt.Errorf("cgroup line %q: path is not absolute", sc.Text())
		}
		l := cgLine{hier: uint32(h), path: f[2]}
		if f[1] != "" {
			l.ctrls = strings.Split(f[1], ",")
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// cgMount is a cgroup filesystem mounted at its root.
type cgMount struct {
	dir   string
	v2    bool
	ctrls []string // v1: controllers and name=… from the super options
}

// parseCgroupMounts reads /proc/self/mountinfo for cgroup and cgroup2
// mounts of a hierarchy's root (bind mounts of a subtree are skipped).
func parseCgroupMounts(r io.Reader) ([]cgMount, error) {
	var out []cgMount
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || pf[3] != "/" {
			continue
		}
		dir := unescapeMount(pf[4])
		switch qf[0] {
		case "cgroup2":
			out = append(out, cgMount{dir: dir, v2: true})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(qf[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent=") && o != "clone_children" && o != "noprefix" && o != "xattr" && o != "cpuset_v2_mode" {
					ctrls = append(ctrls, o)
				}
			}
			out = append(out, cgMount{dir: dir, ctrls: ctrls})
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDir returns the directory of l's cgroup, or "" when its
// hierarchy is not mounted (or l is a hierarchy's root, never bound).
func cgroupDir(l cgLine, mounts []cgMount) string {
	if l.path == "/" || strings.Contains(l.path, "/../") || strings.HasSuffix(l.path, "/..") {
		return ""
	}
	for _, m := range mounts {
		if (l.hier == 0) != m.v2 {
			continue
		}
		if m.v2 || sameSet(l.ctrls, m.ctrls) {
			return m.dir + l.path
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
