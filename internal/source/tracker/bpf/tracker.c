// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * contid task tracker: keeps each task's audit container identifier in BPF
 * task storage, copies it from the creating task to every new task inside
 * the kernel, and reports fork, exec, exit and namespace changes through a
 * ring buffer. The Go side (internal/source/tracker) owns the event layout below;
 * its TestLayout checks decode.go against the BTF of this object.
 */
#include "kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* GPL-compatible: bpf_probe_read_kernel is a GPL-only helper. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CONTID_UNSET (~0ULL)

/* task_val.flags */
#define VAL_SET 1U   /* contid holds a registered value */
/* Leader only: tagged for its whole group. Informational since every
 * thread without a value of its own reads its leader's (task_contid). */
#define VAL_GROUP 2U

/* The value of contid_task. Its size and the meaning of VAL_SET are part of
 * the pinned map's ABI: a change must come with a new size or a migration. */
struct task_val {
	u64 contid;
	u32 flags;
	u32 reserved;
};

enum event_kind {
	EV_FORK = 1,
	EV_EXEC = 2,
	EV_EXIT = 3,
	EV_NS = 4,
	EV_JOIN = 5,
};

/* event_hdr.flags */
#define EVF_CONTID 1U           /* contid is the task's registered value */
#define EVF_THREAD 2U           /* fork: the child is a thread (CLONE_THREAD) */
#define EVF_GROUP_DEAD 4U       /* exit: the last thread of the group */
#define EVF_GROUP_DEAD_KNOWN 8U /* exit: EVF_GROUP_DEAD is exact (tracepoint argument) */
#define EVF_JOINED 16U          /* fork: the child's contid comes from the cgroup it was created in */

#define EVENT_VERSION 1

enum ns_index {
	NS_CGROUP = 0,
	NS_IPC = 1,
	NS_MNT = 2,
	NS_NET = 3,
	NS_PID = 4,
	NS_TIME = 5,
	NS_USER = 6,
	NS_UTS = 7,
	NS_PID_FOR_CHILDREN = 8,
	NS_TIME_FOR_CHILDREN = 9,
	NS_COUNT = 10,
};

struct ns_rec {
	u64 id;   /* ns_common.ns_id, 0 where the kernel has none */
	u32 inum; /* ns_common.inum, the nsfs inode number */
	u32 pad;
};

/* Common header of every event: 80 bytes. */
struct event_hdr {
	u8 kind;
	u8 version;
	u16 size; /* bytes of the whole event */
	u32 flags;
	u64 time;           /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	u64 start_time;     /* task->start_time (CLOCK_MONOTONIC) */
	u64 start_boottime; /* task->start_boottime (CLOCK_BOOTTIME, /proc/PID/stat) */
	u64 contid;         /* CONTID_UNSET unless EVF_CONTID */
	u32 tid;
	u32 tgid;
	u32 uid;  /* real uid, initial user namespace */
	u32 auid; /* loginuid */
	u32 ses;  /* sessionid */
	u32 pad;
	char comm[16];
};

/* The header describes the child. 256 bytes. */
struct fork_event {
	struct event_hdr hdr;
	u32 parent_tid; /* the creating task (current) */
	u32 parent_tgid;
	u64 clone_flags;
	struct ns_rec ns[NS_COUNT];
};

/* 248 bytes. */
struct exec_event {
	struct event_hdr hdr;
	u32 old_tid; /* tid before exec; differs when a non-leader thread exec'd */
	u32 pad;
	struct ns_rec ns[NS_COUNT];
};

/* The namespaces as the task dies (exit_nsproxy_namespaces comes later).
 * 248 bytes. */
struct exit_event {
	struct event_hdr hdr;
	s32 exit_code;
	u32 pad;
	struct ns_rec ns[NS_COUNT];
};

enum ns_op {
	NSOP_UNSHARE = 1,
	NSOP_SETNS = 2,
	NSOP_SCAN = 3, /* found by the periodic scan; the syscall is unknown */
};

/* 248 bytes. */
struct ns_event {
	struct event_hdr hdr;
	u32 op;
	u32 pad;
	struct ns_rec ns[NS_COUNT];
};

/* A process moved into a cgroup bound to a container (a write to
 * cgroup.procs, as `runc exec` does). The header describes the moved
 * process (the thread group leader) with its contid after the move.
 * 104 bytes. */
struct join_event {
	struct event_hdr hdr;
	u64 cg_contid; /* the container the cgroup is bound to */
	u64 cgroup_id; /* kernfs id (inode number) of the cgroup */
	u32 mover_tid; /* the task that moved it (current) */
	u32 mover_tgid;
	u32 hierarchy; /* cgroup hierarchy id: 0 for the unified hierarchy */
	u32 tagged;    /* 1: the kernel gave it cg_contid; 0: it had a contid */
};

/* Key of contid_cgroups. */
struct cg_key {
	u32 hierarchy;
	u32 pad;
	u64 id;
};

enum counter {
	CNT_RINGBUF_FULL = 0, /* events lost: bpf_ringbuf_reserve failed */
	CNT_INHERIT_FAIL = 1, /* child task storage could not be created */
	CNT_MAX = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} contid_task SEC(".maps");

/* Cgroups bound to containers (contid's extension of spec §3, exec into a
 * running container): a process moved into, or created in, one of them
 * without a contid of its own joins the container. Filled by the daemon at
 * registration, for cgroups that hold the registered process alone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct cg_key);
	__type(value, u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} contid_cgroups SEC(".maps");

/* A digest of the namespaces last reported for each task, so that the scan
 * reports only changes. Not pinned: rebuilt by each tracker. */
struct ns_seen {
	u64 digest;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ns_seen);
} ns_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, u32);
	__type(value, u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} contid_stats SEC(".maps");

/* Only puts the event types into BTF (bpf2go -type); ring buffers have no
 * value size and the loader drops it. */
union event {
	struct event_hdr hdr;
	struct fork_event fork;
	struct exec_event exec;
	struct exit_event exit;
	struct ns_event ns;
	struct join_event join;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* overridden by Config.RingSize */
	__type(value, union event);
} events SEC(".maps");

/* Set by the loader before load; the verifier prunes dead branches. */
volatile const bool only_tagged = false;
volatile const bool exit_has_group_dead = false;
/* Wakeup batching (Config.Batch): 0 wakes the reader for each event it
 * waits for (the kernel's own policy). Otherwise an event wakes the reader
 * only if the last wakeup is at least batch_ns old or wakeup_bytes wait in
 * the ring; the reader collects the others on a timer of the same period.
 * Each wakeup costs the producer several microseconds in a VM (irq_work
 * self-IPI), which per-event wakeups would charge to every fork. */
volatile const u64 batch_ns = 0;
volatile const u64 wakeup_bytes = 0;

/* When an event last woke the reader. Updated without atomics: two CPUs
 * may both wake it, which is harmless. */
u64 last_wakeup = 0;
/* Set by the reader when it goes idle (Tracker.WakeNext): the next event
 * of a task with a contid, which may make a record, wakes it at once and
 * clears this. Events of other tasks stay batched. */
u32 wake_contained = 0;

static __always_inline u64 submit_flags(const struct event_hdr *h)
{
	if (!batch_ns)
		return 0;
	u64 now = h->time;
	if (now - last_wakeup >= batch_ns || ((h->flags & EVF_CONTID) && wake_contained) ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		last_wakeup = now;
		wake_contained = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void count(u32 which)
{
	u64 *c = bpf_map_lookup_elem(&contid_stats, &which);
	if (c)
		__sync_fetch_and_add(c, 1);
}

/* Set by the loader: the kernel has sched_prepare_exec (Linux 6.10+), so
 * keep_on_exec is attached and new threads may share their leader's value
 * instead of getting storage of their own. */
volatile const bool threads_share = false;

/* t's own value, if it has one. */
static __always_inline struct task_val *own_contid(struct task_struct *t)
{
	struct task_val *v = bpf_task_storage_get(&contid_task, t, 0, 0);
	if (v && (v->flags & VAL_SET))
		return v;
	return 0;
}

/*
 * A task's contid: its own value, or else its thread group leader's. A
 * thread group has one contid (spec §3: a TID names its thread group), held
 * by the leader; a thread has storage of its own only where it was tagged
 * one by one (registration, join) or created without threads_share. The
 * leader's storage lives as long as its task_struct: a leader that exited
 * early stays a zombie, storage included, until the whole group is reaped,
 * or until a thread's exec releases it (keep_on_exec covers that).
 */
static __always_inline struct task_val *task_contid(struct task_struct *t)
{
	struct task_val *v = own_contid(t);
	if (v)
		return v;
	/* A direct (BTF) load, not a probe read: the helper needs a typed
	 * pointer. */
	struct task_struct *leader = t->group_leader;
	if (!leader || leader == t)
		return 0;
	return own_contid(leader);
}

/* The value a task created by parent inherits. */
static __always_inline struct task_val *inherited(struct task_struct *parent)
{
	return task_contid(parent);
}

/*
 * Reads below are plain loads through the BTF-typed pointers that tp_btf,
 * iter and bpf_get_current_task_btf give: the verifier turns them into
 * fault-safe loads (a NULL pointer reads as 0), an order of magnitude cheaper
 * than bpf_probe_read_kernel, which BPF_CORE_READ calls for every field.
 */

/* A NULL namespace (c is then a small bogus address) reads as zeros. */
static __always_inline void read_nsc(struct ns_rec *r, const struct ns_common *c)
{
	r->inum = c->inum;
	r->id = bpf_core_field_exists(c->ns_id) ? c->ns_id : 0;
	r->pad = 0;
}

/* The namespaces of /proc/PID/ns/{cgroup,ipc,mnt,net,pid,time,user,uts,
 * pid_for_children,time_for_children}: pid is the active pid namespace
 * (task_active_pid_ns: the one the task's pid was allocated in), time the
 * active time namespace, user the one of the task's objective credentials.
 * No NULL checks: they would only multiply the verifier's paths, and a
 * missing nsproxy (an exiting task) reads as zero records anyway. */
static __always_inline void read_ns_set(struct ns_rec ns[NS_COUNT], struct task_struct *t)
{
	struct nsproxy *np = t->nsproxy;
	read_nsc(&ns[NS_CGROUP], &np->cgroup_ns->ns);
	read_nsc(&ns[NS_IPC], &np->ipc_ns->ns);
	read_nsc(&ns[NS_MNT], &np->mnt_ns->ns);
	read_nsc(&ns[NS_NET], &np->net_ns->ns);
	read_nsc(&ns[NS_TIME], &np->time_ns->ns);
	read_nsc(&ns[NS_UTS], &np->uts_ns->ns);
	read_nsc(&ns[NS_PID_FOR_CHILDREN], &np->pid_ns_for_children->ns);
	read_nsc(&ns[NS_TIME_FOR_CHILDREN], &np->time_ns_for_children->ns);
	read_nsc(&ns[NS_USER], &t->real_cred->user_ns->ns);

	/* thread_pid->numbers[thread_pid->level].ns: the index is not a
	 * constant, which plain loads do not allow, so this one is a probe
	 * read at an address computed from relocated offsets. */
	struct pid *pid = t->thread_pid;
	struct pid_namespace *pns = 0;
	if (pid) {
		u32 level = pid->level;
		if (level < 64) {
			void *at = (void *)pid + bpf_core_field_offset(struct pid, numbers) +
				   level * bpf_core_type_size(struct upid) +
				   bpf_core_field_offset(struct upid, ns);
			bpf_probe_read_kernel(&pns, sizeof(pns), at);
		}
	}
	/* pns came from a probe read: an untyped pointer, so probe reads. */
	ns[NS_PID].id = 0;
	ns[NS_PID].inum = 0;
	ns[NS_PID].pad = 0;
	if (pns) {
		ns[NS_PID].inum = BPF_CORE_READ(pns, ns.inum);
		if (bpf_core_field_exists(pns->ns.ns_id))
			ns[NS_PID].id = BPF_CORE_READ(pns, ns.ns_id);
	}
}

/* FNV-1a over the records: equal sets give equal digests; a digest of 0 is
 * avoided because it means "nothing seen yet". */
static __always_inline u64 ns_digest(const struct ns_rec ns[NS_COUNT])
{
	u64 h = 14695981039346656037ULL;
	for (int i = 0; i < NS_COUNT; i++) {
		h = (h ^ ns[i].inum) * 1099511628211ULL;
		h = (h ^ ns[i].id) * 1099511628211ULL;
	}
	return h ? h : 1;
}

/* Records that userspace has been told task t's namespaces are ns. */
static __always_inline void ns_reported(struct task_struct *t, const struct ns_rec ns[NS_COUNT])
{
	struct ns_seen *s = bpf_task_storage_get(&ns_seen, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s)
		s->digest = ns_digest(ns);
}

static __always_inline void fill_hdr(struct event_hdr *h, u8 kind, u16 size, struct task_struct *t,
				     const struct task_val *v)
{
	h->kind = kind;
	h->version = EVENT_VERSION;
	h->size = size;
	h->flags = 0;
	h->time = bpf_ktime_get_ns();
	h->start_time = t->start_time;
	h->start_boottime = t->start_boottime;
	if (v) {
		h->contid = v->contid;
		h->flags |= EVF_CONTID;
	} else {
		h->contid = CONTID_UNSET;
	}
	h->tid = t->pid;
	h->tgid = t->tgid;
	const struct cred *cred = t->real_cred;
	h->uid = cred ? cred->uid.val : 0;
	h->auid = ~0U;
	h->ses = ~0U;
	if (bpf_core_field_exists(t->loginuid))
		h->auid = t->loginuid.val;
	if (bpf_core_field_exists(t->sessionid))
		h->ses = t->sessionid;
	h->pad = 0;
	__builtin_memcpy(h->comm, t->comm, sizeof(h->comm));
}

/* The contid of the container cgroup cg is bound to, or 0. */
static __always_inline u64 *cgroup_contid(struct cgroup *cg)
{
	struct cg_key k = {};
	k.hierarchy = cg->root->hierarchy_id;
	k.id = cg->kn->id;
	return bpf_map_lookup_elem(&contid_cgroups, &k);
}

/* Gives t the contid of the container cg is bound to, unless t has a
 * contid already; returns 1 if it did. */
static __always_inline int join_cgroup(struct task_struct *t, struct cgroup *cg, u32 flags)
{
	u64 *id = cgroup_contid(cg);
	if (!id || task_contid(t))
		return 0;
	struct task_val *v = bpf_task_storage_get(&contid_task, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!v) {
		count(CNT_INHERIT_FAIL);
		return 0;
	}
	v->contid = *id;
	v->reserved = 0;
	v->flags = flags;
	return 1;
}

/*
 * Inheritance. task_newtask fires at the end of copy_process for every new
 * task — fork, vfork, clone, clone3, new threads, io_uring workers, vhost and
 * kernel threads — before the child is woken: the child's storage is set
 * before it runs its first instruction. (sched_process_fork fires from
 * kernel_clone only and misses io_uring workers.) This program touches no
 * ring buffer so that its link can stay pinned: inheritance keeps working
 * while no daemon runs.
 */
SEC("tp_btf/task_newtask")
int BPF_PROG(inherit, struct task_struct *child, u64 clone_flags)
{
	struct task_struct *parent = bpf_get_current_task_btf();
	struct task_val *pv = inherited(parent);
	if (!pv) {
		/* clone3(CLONE_INTO_CGROUP), as crun's exec may do: the child
		 * is born into its cgroup without an attach. */
		if (clone_flags & CLONE_INTO_CGROUP)
			join_cgroup(child, child->cgroups->dfl_cgrp, VAL_SET);
		return 0; /* untagged parents create no storage */
	}

	/* A new thread whose leader holds the value it would copy reads the
	 * leader's: creating and freeing storage for every thread is most of
	 * what the tracker costs a thread's life. */
	if (threads_share && (clone_flags & CLONE_THREAD)) {
		struct task_val *lv = own_contid(parent->group_leader);
		if (lv && lv->contid == pv->contid)
			return 0;
	}

	struct task_val *cv = bpf_task_storage_get(&contid_task, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!cv) {
		count(CNT_INHERIT_FAIL);
		return 0;
	}
	/* A value set from user space through a pidfd between the child's pid
	 * becoming visible and this point is newer than the parent's: keep it. */
	if (cv->flags & VAL_SET)
		return 0;
	cv->contid = pv->contid;
	cv->reserved = 0;
	cv->flags = VAL_SET; /* VAL_GROUP is the leader's alone */
	return 0;
}

/*
 * A thread that execs becomes its group's leader (de_thread), and the old
 * leader, whose storage the thread may have been reading, is released. So
 * before that, at sched_prepare_exec (Linux 6.10+: after the point of no
 * return, before de_thread), a non-leader thread without a value of its own
 * gets the leader's. Like inherit it touches no ring buffer and stays
 * pinned. Where the tracepoint is missing the loader aims it at
 * sched_process_exec, never attaches it, and threads_share is false.
 */
SEC("tp_btf/sched_prepare_exec")
int keep_on_exec(u64 *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct task_struct *leader = t->group_leader;
	if (!leader || leader == t || own_contid(t))
		return 0;
	struct task_val *lv = own_contid(leader);
	if (!lv)
		return 0;
	struct task_val *v = bpf_task_storage_get(&contid_task, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!v) {
		count(CNT_INHERIT_FAIL);
		return 0;
	}
	v->contid = lv->contid;
	v->reserved = 0;
	v->flags = VAL_SET;
	return 0;
}

SEC("tp_btf/task_newtask")
int BPF_PROG(on_fork, struct task_struct *child, u64 clone_flags)
{
	struct task_struct *parent = bpf_get_current_task_btf();
	/* inherit ran first (attached first); if it could not, report what the
	 * child would have inherited and let CNT_INHERIT_FAIL tell. */
	struct task_val *v = task_contid(child);
	if (!v)
		v = inherited(parent);
	if (only_tagged && !v)
		return 0;

	struct fork_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CNT_RINGBUF_FULL);
		return 0;
	}
	fill_hdr(&e->hdr, EV_FORK, sizeof(*e), child, v);
	if (clone_flags & CLONE_THREAD)
		e->hdr.flags |= EVF_THREAD;
	if (v && (clone_flags & CLONE_INTO_CGROUP) && !inherited(parent))
		e->hdr.flags |= EVF_JOINED;
	e->parent_tid = parent->pid;
	e->parent_tgid = parent->tgid;
	e->clone_flags = clone_flags;
	/* No ns_reported here: creating the child's ns_seen storage would
	 * cost every fork about a microsecond; the scan handles new tasks.
	 * A new thread without CLONE_NEW* flags shares its creator's nsproxy
	 * and credentials: its namespaces are the creator's, and zero records
	 * tell user space so (reading them is most of what this program costs
	 * a thread). */
	if ((clone_flags & CLONE_THREAD) && !(clone_flags & CLONE_NEW_THREAD_OK))
		__builtin_memset(e->ns, 0, sizeof(e->ns));
	else
		read_ns_set(e->ns, child);
	bpf_ringbuf_submit(e, submit_flags(&e->hdr));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, void *bprm)
{
	struct task_val *v = task_contid(p);
	if (only_tagged && !v)
		return 0;

	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CNT_RINGBUF_FULL);
		return 0;
	}
	fill_hdr(&e->hdr, EV_EXEC, sizeof(*e), p, v);
	e->old_tid = old_pid;
	e->pad = 0;
	/* exec can switch the time namespace (to time_for_children). */
	read_ns_set(e->ns, p);
	ns_reported(p, e->ns);
	bpf_ringbuf_submit(e, submit_flags(&e->hdr));
	return 0;
}

/* Declared with the raw context so that the second argument (group_dead,
 * Linux 6.16+) is only read where the loader found it in the kernel's BTF. */
SEC("tp_btf/sched_process_exit")
int on_exit(u64 *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx[0];
	struct task_val *v = task_contid(p);
	if (only_tagged && !v)
		return 0;

	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CNT_RINGBUF_FULL);
		return 0;
	}
	fill_hdr(&e->hdr, EV_EXIT, sizeof(*e), p, v);
	if (exit_has_group_dead) {
		e->hdr.flags |= EVF_GROUP_DEAD_KNOWN;
		if ((bool)ctx[1])
			e->hdr.flags |= EVF_GROUP_DEAD;
	} else {
		/* signal->live was decremented just before the tracepoint;
		 * two threads exiting at once may both see 0. */
		struct signal_struct *sig = p->signal;
		if (sig && sig->live.counter == 0)
			e->hdr.flags |= EVF_GROUP_DEAD;
	}
	e->exit_code = p->exit_code;
	e->pad = 0;
	/* A thread still sharing its leader's nsproxy changed no namespace
	 * since it was created (setns and unshare give the caller a new one;
	 * user and pid namespaces are the whole group's): zero records say
	 * "as before". A dead leader's nsproxy is NULL, so the last thread of
	 * a group whose leader exited first reports in full. */
	struct task_struct *leader = p->group_leader;
	if (leader && leader != p && p->nsproxy && p->nsproxy == leader->nsproxy)
		__builtin_memset(e->ns, 0, sizeof(e->ns));
	else
		read_ns_set(e->ns, p);
	bpf_ringbuf_submit(e, submit_flags(&e->hdr));
	return 0;
}

static __always_inline void emit_ns(struct task_struct *t, struct task_val *v, u32 op, const struct ns_rec ns[NS_COUNT])
{
	struct ns_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CNT_RINGBUF_FULL);
		return;
	}
	fill_hdr(&e->hdr, EV_NS, sizeof(*e), t, v);
	e->op = op;
	e->pad = 0;
	__builtin_memcpy(e->ns, ns, sizeof(e->ns));
	bpf_ringbuf_submit(e, submit_flags(&e->hdr));
}

/*
 * Namespace changes, way 1 (Config.NSScan, the default): a task iterator,
 * run by the tracker on a timer, reports every task whose namespaces differ
 * from what was last reported for it (by an exec, a syscall event or an
 * earlier scan). A task the scan meets for the first time is reported if it
 * was born since the previous scan started (its fork event is then the only
 * report, and it may have changed since: user space drops a repeat), and
 * recorded silently otherwise (user space knows tasks older than the
 * tracker from /proc). A change undone within one interval is not seen.
 */
u64 scan_session = 0;
u64 prev_scan_start = 0; /* 0: no scan yet, the first one is silent */
u64 cur_scan_start = 0;

SEC("iter/task")
int scan_ns(struct bpf_iter__task *ctx)
{
	u64 sid = ctx->meta->session_id;
	if (sid != scan_session) { /* first task of a new scan */
		scan_session = sid;
		prev_scan_start = cur_scan_start;
		cur_scan_start = bpf_ktime_get_ns();
	}

	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	if (t->flags & PF_KTHREAD)
		return 0;
	struct task_val *v = task_contid(t);
	if (only_tagged && !v)
		return 0;

	struct ns_rec ns[NS_COUNT];
	read_ns_set(ns, t);
	u64 d = ns_digest(ns);
	struct ns_seen *s = bpf_task_storage_get(&ns_seen, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s || s->digest == d)
		return 0;
	bool report = s->digest != 0 || (prev_scan_start && t->start_time > prev_scan_start);
	s->digest = d;
	if (report)
		emit_ns(t, v, NSOP_SCAN, ns);
	return 0;
}

/*
 * Namespace changes, way 2 (Config.NSSyscalls): exact and immediate, from
 * the syscall tracepoints. Enabling any syscall tracepoint routes every
 * syscall of every task through the kernel's syscall-tracing slow path
 * (about +50 ns per syscall measured on the CI machine, whichever syscall is
 * traced), which is why this is not the default.
 */

/* Layout of syscalls/sys_exit_* (events/syscalls/sys_exit_setns/format). */
struct sys_exit_ctx {
	u64 common;
	s32 nr;
	s32 pad;
	s64 ret;
};

static __always_inline int ns_changed(struct sys_exit_ctx *ctx, u32 op)
{
	if (ctx->ret != 0)
		return 0; /* failed: nothing changed */
	struct task_struct *t = bpf_get_current_task_btf();
	struct task_val *v = task_contid(t);
	if (only_tagged && !v)
		return 0;
	struct ns_rec ns[NS_COUNT];
	read_ns_set(ns, t);
	ns_reported(t, ns);
	emit_ns(t, v, op, ns);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setns")
int on_setns(struct sys_exit_ctx *ctx)
{
	return ns_changed(ctx, NSOP_SETNS);
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int on_unshare(struct sys_exit_ctx *ctx)
{
	return ns_changed(ctx, NSOP_UNSHARE);
}

/*
 * Exec into a running container: a write to cgroup.procs moves a process
 * (runc exec moves its child before the child runs the command). Fires
 * once per move, after it, for the group leader; with threadgroup the
 * leader gets the group flag so that threads it has not tagged inherit its
 * value, and the daemon tags every thread on the event, as at registration.
 */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(on_cgroup_attach, struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)
{
	u64 *id = cgroup_contid(dst);
	if (!id)
		return 0;
	u64 cg_contid = *id;
	int tagged = join_cgroup(task, dst, threadgroup ? VAL_SET | VAL_GROUP : VAL_SET);

	struct join_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CNT_RINGBUF_FULL);
		return 0;
	}
	struct task_struct *cur = bpf_get_current_task_btf();
	fill_hdr(&e->hdr, EV_JOIN, sizeof(*e), task, task_contid(task));
	e->cg_contid = cg_contid;
	e->cgroup_id = dst->kn->id;
	e->mover_tid = cur->pid;
	e->mover_tgid = cur->tgid;
	e->hierarchy = dst->root->hierarchy_id;
	e->tagged = tagged;
	bpf_ringbuf_submit(e, submit_flags(&e->hdr));
	return 0;
}
