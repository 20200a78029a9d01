package tracker

import (
	"testing"

	"github.com/contid/contid/internal/source/procfs"
)

const mountinfo = `23 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:32 /sub /mnt/memsub rw,relatime - cgroup cgroup rw,memory
51 23 0:40 / /mnt/my\040dir rw,relatime - cgroup cgroup rw,pids
`

// TestCgroupDirs: /proc/PID/cgroup lines map to the directories of their
// hierarchies' root mounts; roots and unmounted hierarchies map to none.
func TestCgroupDirs(t *testing.T) {
	mounts := procfs.ParseCgroupMounts([]byte(mountinfo))
	lines, err := procfs.ParseCgroup([]byte("9:name=systemd:/ctr\n8:pids:/ctr\n4:memory:/ctr\n2:cpuacct,cpu:/ctr\n3:cpuset:/ctr\n1:blkio:/\n0::/ctr/leaf\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/sys/fs/cgroup/systemd/ctr",
		"/mnt/my dir/ctr",
		"/sys/fs/cgroup/memory/ctr", // not the bind mount of /sub
		"/sys/fs/cgroup/cpu,cpuacct/ctr",
		"", // cpuset is not mounted
		"", // a hierarchy's root is never bound
		"/sys/fs/cgroup/unified/ctr/leaf",
	}
	for i, l := range lines {
		if got := cgroupDir(l, mounts); got != want[i] {
			t.Errorf("%+v: %q, want %q", l, got, want[i])
		}
	}
	for _, bad := range []string{"x:cpu:/a\n", "1:cpu\n", "1:cpu:relative\n"} {
		if _, err := procfs.ParseCgroup([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !onlyMember("123\n", 123) || onlyMember("123\n124\n", 123) || onlyMember("", 123) || onlyMember("1234\n", 123) {
		t.Error("onlyMember")
	}
}
