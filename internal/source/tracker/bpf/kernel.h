/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types tracker.c reads, declared by hand so that the build
 * does not depend on one machine's vmlinux.h. Every struct carries
 * preserve_access_index: clang records each field access as a CO-RE
 * relocation and the loader (cilium/ebpf) rewrites the offsets against the
 * running kernel's BTF. Only the fields we read are listed; their order and
 * the absence of the others do not matter.
 */
#pragma once

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
enum { false = 0, true = 1 };

typedef int pid_t;
typedef unsigned int uid_t;

/* From include/uapi/linux/bpf.h. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
	BPF_F_NO_PREALLOC = 1U << 0,
};
enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1ULL << 0,
};
enum {
	BPF_ANY = 0,
};
enum {
	BPF_RB_NO_WAKEUP = 1ULL << 0,
	BPF_RB_FORCE_WAKEUP = 1ULL << 1,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};

/* From include/uapi/linux/sched.h and include/linux/sched.h. */
#define CLONE_THREAD 0x00010000
/* The CLONE_NEW* flags a thread may be created with (CLONE_NEWUSER and
 * CLONE_NEWPID are refused with CLONE_THREAD). */
#define CLONE_NEWNS 0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_NEWUTS 0x04000000
#define CLONE_NEWIPC 0x08000000
#define CLONE_NEWNET 0x40000000
#define CLONE_NEWTIME 0x00000080
#define CLONE_NEW_THREAD_OK (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWTIME)
#define CLONE_INTO_CGROUP 0x200000000ULL
#define PF_KTHREAD 0x00200000

typedef struct {
	uid_t val;
} kuid_t;

typedef struct {
	int counter;
} atomic_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
	/* Linux 6.18+: unique 64-bit id, equal to ioctl NS_GET_ID. Guarded
	 * with bpf_core_field_exists. */
	u64 ns_id;
};

struct uts_namespace {
	struct ns_common ns;
};
struct ipc_namespace {
	struct ns_common ns;
};
struct mnt_namespace {
	struct ns_common ns;
};
struct net {
	struct ns_common ns;
};
struct time_namespace {
	struct ns_common ns;
};
struct cgroup_namespace {
	struct ns_common ns;
};
struct user_namespace {
	struct ns_common ns;
};
struct pid_namespace {
	unsigned int level;
	struct ns_common ns;
};

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
	struct time_namespace *time_ns;
	struct time_namespace *time_ns_for_children;
	struct cgroup_namespace *cgroup_ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
};

struct cred {
	kuid_t uid;
	struct user_namespace *user_ns;
};

struct signal_struct {
	atomic_t live;
};

struct kernfs_node {
	u64 id; /* the inode number of the cgroup's directory */
};

struct cgroup_root {
	int hierarchy_id; /* 0: the unified (v2) hierarchy */
};

struct cgroup {
	struct kernfs_node *kn;
	struct cgroup_root *root;
};

struct css_set {
	struct cgroup *dfl_cgrp; /* the task's cgroup in the unified hierarchy */
};

struct task_struct {
	struct css_set *cgroups;
	unsigned int flags;
	int exit_code;
	pid_t pid;
	pid_t tgid;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	u64 start_time;
	u64 start_boottime;
	const struct cred *real_cred;
	char comm[16];
	struct nsproxy *nsproxy;
	struct signal_struct *signal;
	kuid_t loginuid;
	unsigned int sessionid;
};

struct bpf_iter_meta {
	void *seq;
	u64 session_id;
	u64 seq_num;
};

/* Context of iter/task programs. */
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop
