package netpkt

// The BPF objects are generated and committed (netpkt_bpfel.{go,o},
// netpkt_bpfeb.{go,o}), as the tracker's are. Needs clang-14,
// llvm-strip-14 and libbpf-dev; no vmlinux.h: bpf/kernel.h declares the
// kernel structs with CO-RE relocations.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux -target bpfel,bpfeb -type pair_event netpkt bpf/netpkt.c -- -mcpu=v3 -Wall -Werror
