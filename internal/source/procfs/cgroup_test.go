package procfs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCgroup(t *testing.T) {
	got, err := ParseCgroup([]byte("9:name=systemd:/ctr\n2:cpuacct,cpu:/a:b\n0::/ctr/leaf\n"))
	want := []Cgroup{
		{Hier: 9, Ctrls: []string{"name=systemd"}, Path: "/ctr"},
		{Hier: 2, Ctrls: []string{"cpuacct", "cpu"}, Path: "/a:b"},
		{Hier: 0, Path: "/ctr/leaf"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got, err := ParseCgroup(nil); err != nil || got != nil {
		t.Fatalf("empty: %+v, %v", got, err)
	}
	for _, bad := range []string{"\n", "x:cpu:/a\n", "1:cpu\n", "1:cpu:relative\n", "0::/a\n\n1:cpu:/b\n", "-1::/\n"} {
		if _, err := ParseCgroup([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseCgroupMounts(t *testing.T) {
	const mountinfo = `23 1 254:0 / / rw,relatime - ext4 /dev/vda rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:32 /sub /mnt/memsub rw,relatime - cgroup cgroup rw,memory
51 23 0:40 / /mnt/my\040dir rw,relatime shared:5 - cgroup cgroup rw,pids
52 23 0:41 / /mnt/bad\04 rw - cgroup2 cgroup2 rw
a line without the separator
`
	want := []CgroupMount{
		{Dir: "/sys/fs/cgroup/cpu,cpuacct", Ctrls: []string{"cpu", "cpuacct"}},
		{Dir: "/sys/fs/cgroup/systemd", Ctrls: []string{"name=systemd"}},
		{Dir: "/sys/fs/cgroup/unified", V2: true},
		{Dir: "/mnt/my dir", Ctrls: []string{"pids"}},
		{Dir: `/mnt/bad\04`, V2: true}, // a short escape stays as written
	}
	if got := ParseCgroupMounts([]byte(mountinfo)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("9:name=systemd:/ctr\n0::/ctr/leaf\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCgroup(b)
		for _, c := range cs {
			if err == nil && !strings.HasPrefix(c.Path, "/") {
				t.Fatalf("relative path accepted: %+v", c)
			}
		}
	})
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add([]byte("51 23 0:40 / /mnt/my\\040dir rw,relatime - cgroup cgroup rw,pids\n41 31 0:38 / /u rw - cgroup2 cgroup2 rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseCgroupMounts(b) })
}
