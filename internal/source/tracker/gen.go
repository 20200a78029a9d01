package tracker

// The BPF objects are generated and committed (tracker_bpfel.{go,o},
// tracker_bpfeb.{go,o}); CI regenerates them and fails on a diff. Needs
// clang-14 and llvm-strip-14 (Debian 12: clang 1:14.0-55.7~deb12u1, llvm) and
// libbpf-dev 1:1.1.2 for <bpf/bpf_helpers.h>; no vmlinux.h: bpf/kernel.h
// declares the kernel structs with CO-RE relocations.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux -target bpfel,bpfeb -type event_hdr -type fork_event -type exec_event -type exit_event -type ns_event -type join_event -type cg_key -type ns_rec -type task_val tracker bpf/tracker.c -- -mcpu=v3 -Wall -Werror
