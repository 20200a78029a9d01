package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Cgroup is one line of /proc/PID/cgroup: the task's cgroup in one
// hierarchy.
type Cgroup struct {
	Hier  uint32   // hierarchy id; 0 for the unified (cgroup2) one
	Ctrls []string // controllers, "name=systemd" for a named hierarchy; none for the unified one
	Path  string   // absolute, from the hierarchy's root
}

// ParseCgroup reads /proc/PID/cgroup.
func ParseCgroup(b []byte) ([]Cgroup, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var out []Cgroup
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("procfs: cgroup line %q: want hierarchy:controllers:path", line)
		}
		h, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("procfs: cgroup line %q: hierarchy id: %w", line, err)
		}
		if !strings.HasPrefix(f[2], "/") {
			return nil, fmt.Errorf("procfs: cgroup line %q: path is not absolute", line)
		}
		c := Cgroup{Hier: uint32(h), Path: f[2]}
		if f[1] != "" {
			c.Ctrls = strings.Split(f[1], ",")
		}
		out = append(out, c)
	}
	return out, nil
}

// CgroupMount is a cgroup filesystem mounted at its hierarchy's root.
type CgroupMount struct {
	Dir   string
	V2    bool
	Ctrls []string // v1: controllers and name=… from the super options
}

// ParseCgroupMounts reads /proc/PID/mountinfo for cgroup and cgroup2
// mounts of a hierarchy's root (bind mounts of a subtree are left out).
func ParseCgroupMounts(b []byte) []CgroupMount {
	var out []CgroupMount
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		pre, post, ok := strings.Cut(string(line), " - ")
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
			out = append(out, CgroupMount{Dir: dir, V2: true})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(qf[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent=") && o != "clone_children" && o != "noprefix" && o != "xattr" && o != "cpuset_v2_mode" {
					ctrls = append(ctrls, o)
				}
			}
			out = append(out, CgroupMount{Dir: dir, Ctrls: ctrls})
		}
	}
	return out
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
