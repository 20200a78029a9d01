/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types the packet programs read, declared with CO-RE
 * relocations (preserve_access_index): field offsets come from the running
 * kernel's BTF at load time, so no vmlinux.h is needed.
 */
#ifndef NETPKT_KERNEL_H
#define NETPKT_KERNEL_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;
typedef u8 __u8;
typedef u32 __u32;
typedef s32 __s32;
typedef u64 __u64;
typedef s64 __s64;
typedef unsigned short __u16;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;

enum bpf_map_type {
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
	u64 ns_id;
};

struct net {
	struct ns_common ns;
};

struct sk_buff;

struct nf_hook_state {
	u8 hook;
	u8 pf;
	struct net *net;
};

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

struct timespec64 {
	s64 tv_sec;
	long tv_nsec;
};

struct audit_stamp {
	struct timespec64 ctime;
	unsigned int serial;
};

struct audit_buffer {
	void *ctx;
	struct audit_stamp stamp;
};

struct kmem_cache;
struct sock;

#pragma clang attribute pop

#endif
