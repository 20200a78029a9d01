package tracker

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Available reports whether this kernel and process can run the tracker
// with the default Config. The error names every missing facility (joined
// with errors.Join). It needs the privileges Open needs, changes nothing,
// and finally loads the objects without pinning or attaching them, so that
// a verifier rejection is reported too. (Config.NSSyscalls also needs
// tracefs and CONFIG_FTRACE_SYSCALLS; Open reports those.)
func Available() error {
	var errs []error
	miss := func(what string, err error) {
		errs = append(errs, fmt.Errorf("tracker: %s: %w", what, err))
	}

	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		miss("kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", err)
		return errors.Join(errs...)
	}
	for _, tp := range []string{"task_newtask", "sched_process_exec", "sched_process_exit"} {
		if _, err := kspec.AnyTypeByName("btf_trace_" + tp); err != nil {
			miss("tracepoint "+tp+" in kernel BTF (tp_btf)", err)
		}
	}
	// No features.HaveProgramType(ebpf.Tracing): it probes with an fentry
	// program, which kernels without fentry (like this project's CI) refuse
	// although tp_btf works. The load below tests tp_btf itself.
	if err := features.HaveProgramType(ebpf.TracePoint); err != nil {
		miss("BPF tracepoint programs", err)
	}
	if err := features.HaveMapType(ebpf.TaskStorage); err != nil {
		miss("BPF_MAP_TYPE_TASK_STORAGE (Linux 5.11+)", err)
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		miss("BPF ring buffer (Linux 5.8+)", err)
	}
	if fd, err := unix.PidfdOpen(unix.Gettid(), unix.PIDFD_THREAD); err != nil {
		miss("pidfd_open with PIDFD_THREAD (Linux 6.9+)", err)
	} else {
		unix.Close(fd)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	spec, _, err := specFor(Config{RingSize: os.Getpagesize()})
	if err != nil {
		return err
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("tracker: loading the BPF objects: %w", err)
	}
	coll.Close()
	return nil
}
