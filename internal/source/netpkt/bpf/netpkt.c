// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * contid packet pairing: tells, for each NETFILTER_PKT record the kernel
 * writes, the network namespace whose netfilter hook traversal logged it.
 *
 * nf_open runs first at every hook of each namespace contid watches and
 * pushes {skb, task, namespace} on its CPU's stack; nf_close runs last and
 * pops it, as does a drop (kfree_skb) and the end of the softirq run it
 * happened in. free_ab runs when audit_log_end frees
 * the record's audit_buffer, still inside the rule's call on that CPU: it
 * reads the record's stamp and reports it with the namespace on top of the
 * stack, or none when the top is not the current task's traversal or that
 * traversal has ended without closing (live). See
 * docs/packets.md for why this is exact and where it is not.
 */
#include "kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NF_ACCEPT 1
#define DEPTH 8

struct entry {
	u64 skb;
	u64 task;
	u64 ns_id;
	u64 state; /* the traversal's struct nf_hook_state, on its stack */
	u64 net;
	u32 ns_inum;
	u8 hook;
	u8 pf;
	u16 _pad;
};

struct stack {
	u32 n;
	u32 base;       /* n when the running softirq began */
	u32 in_softirq; /* between softirq_entry and softirq_exit */
	u32 _pad;
	u64 sp; /* free_ab's frame address, as a number (see there) */
	struct entry e[DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stack);
} stacks SEC(".maps");

/* pair_event.flags */
#define PAIR_NETNS 1U    /* ns_id/ns_inum hold the namespace */
#define PAIR_NOTOP 2U    /* no traversal open on this CPU */
#define PAIR_FOREIGN 4U  /* the open traversal is another task's */
#define PAIR_STALE 8U    /* the entry's traversal has ended (stolen) */

struct pair_event {
	u64 sec;
	u64 nsec;
	u64 ns_id;
	u32 ns_inum;
	u32 serial;
	u32 flags;
	u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} pairs SEC(".maps");

/* Keeps struct pair_event in the object's BTF for bpf2go's -type. */
const struct pair_event *pair_event_type __attribute__((unused));

/* Counters, one slot each (per CPU): overflows of the stack, pairs lost
 * because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} counters SEC(".maps");

#define CNT_OVERFLOW 0
#define CNT_RINGFULL 1

/* Address ranges of the functions whose frees are packet records' audit
 * buffers (from /proc/kallsyms, set by the loader). */
const volatile u64 xt_lo = 0, xt_hi = 0, nft_lo = 0, nft_hi = 0;

static __always_inline void count(u32 k)
{
	u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
}

static __always_inline struct stack *mystack(void)
{
	u32 k = 0;
	return bpf_map_lookup_elem(&stacks, &k);
}

SEC("netfilter")
int nf_open(struct bpf_nf_ctx *ctx)
{
	struct stack *s = mystack();
	if (!s)
		return NF_ACCEPT;
	u32 n = s->n;
	if (n >= DEPTH) {
		/* Entries of traversals that never closed: start again. */
		count(CNT_OVERFLOW);
		n = 0;
		s->base = 0;
	}
	/* ctx->state is a trusted BTF pointer: direct loads, no helper calls
	 * (this runs for every packet at a watched hook). */
	const struct net *net = ctx->state->net;
	struct entry *e = &s->e[n & (DEPTH - 1)];
	e->skb = (u64)ctx->skb;
	e->task = bpf_get_current_task();
	e->ns_id = net->ns.ns_id;
	e->ns_inum = net->ns.inum;
	e->state = (u64)ctx->state;
	e->net = (u64)net;
	e->hook = ctx->state->hook;
	e->pf = ctx->state->pf;
	s->n = n + 1;
	return NF_ACCEPT;
}

static __always_inline void pop(u64 skb)
{
	struct stack *s = mystack();
	if (!s)
		return;
	u32 n = s->n;
	if (n == 0 || n > DEPTH)
		return;
	if (s->e[(n - 1) & (DEPTH - 1)].skb == skb)
		s->n = n - 1;
}

SEC("netfilter")
int nf_close(struct bpf_nf_ctx *ctx)
{
	pop((u64)ctx->skb);
	return NF_ACCEPT;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(skb_drop, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	pop((u64)skb);
	return 0;
}

/* A traversal in softirq context begins and ends within one softirq run,
 * and softirqs do not nest on a CPU: whatever a softirq run pushed and did
 * not pop (a packet stolen by defragmentation or queued to user space
 * never reaches nf_close) is dropped when the run ends, so it can never
 * stand for a later record. Entries of the task the softirq interrupted,
 * below the base, are kept. */
SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_in, unsigned int vec)
{
	struct stack *s = mystack();
	if (s) {
		s->base = s->n;
		s->in_softirq = 1;
	}
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(softirq_out, unsigned int vec)
{
	struct stack *s = mystack();
	if (s && s->in_softirq) {
		if (s->n > s->base)
			s->n = s->base;
		s->in_softirq = 0;
	}
	return 0;
}

/* framep returns ctx's address as a number: the verifier allows no
 * arithmetic on a context pointer, but a privileged program may store it
 * in a map value and read back a number. */
static __always_inline u64 framep(struct stack *s, void *ctx)
{
	s->sp = (u64)ctx;
	return *(volatile u64 *)&s->sp;
}

/* Stacks are at most this far apart from their deepest frame to their
 * base (x86-64 THREAD_SIZE and IRQ_STACK_SIZE are 16 KiB, 32 with KASAN). */
#define STACK_SPAN (32U << 10)

/* live tells whether the traversal that pushed e is still running, from
 * the free's own frame sp (its ctx, on the same stack): a traversal keeps
 * its struct nf_hook_state in its caller's frame (nf_hook) until it ends,
 * so that state lies above every frame of a record logged inside it and
 * still names the hook, family and namespace the entry saw. A traversal
 * that left without closing (a packet stolen by defragmentation or
 * queued to user space) has returned: its state's memory is then below
 * the stack's live part, or reused by later frames — by a later
 * traversal's state at the same depth, whose hook, family or namespace
 * differ unless the record was logged in the entry's namespace anyway.
 * Runs only for packet records' frees. */
static __always_inline int live(const struct entry *e, u64 sp)
{
	if (e->state <= sp || e->state - sp >= STACK_SPAN)
		return 0;
	const struct nf_hook_state *st = (const void *)e->state;
	u8 hook = 0, pf = 0;
	u64 net = 0;
	if (bpf_probe_read_kernel(&hook, sizeof(hook), __builtin_preserve_access_index(&st->hook)) ||
	    bpf_probe_read_kernel(&pf, sizeof(pf), __builtin_preserve_access_index(&st->pf)) ||
	    bpf_probe_read_kernel(&net, sizeof(net), __builtin_preserve_access_index(&st->net)))
		return 0;
	return hook == e->hook && pf == e->pf && net == e->net;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(free_ab, unsigned long call_site, const void *ptr, const struct kmem_cache *cache)
{
	if (!((call_site >= xt_lo && call_site < xt_hi) || (call_site >= nft_lo && call_site < nft_hi)))
		return 0;
	const struct audit_buffer *ab = ptr;
	if (BPF_CORE_READ(ab, ctx) != 0)
		return 0; /* packet records have no audit context */
	struct pair_event ev = {};
	ev.serial = BPF_CORE_READ(ab, stamp.serial);
	ev.sec = BPF_CORE_READ(ab, stamp.ctime.tv_sec);
	ev.nsec = BPF_CORE_READ(ab, stamp.ctime.tv_nsec);
	struct stack *s = mystack();
	u32 n = s ? s->n : 0;
	/* In a softirq, the entries below the base are those of the task it
	 * interrupted: a record logged by the softirq has an open traversal
	 * only above them (else a record of an unwatched hook or namespace,
	 * logged in a softirq that interrupted a watched traversal in task
	 * context, would pair with that traversal's namespace). */
	u32 low = (s && s->in_softirq) ? s->base : 0;
	if (!s || n <= low || n > DEPTH) {
		ev.flags = PAIR_NOTOP;
	} else {
		struct entry *e = &s->e[(n - 1) & (DEPTH - 1)];
		if (e->task != bpf_get_current_task()) {
			ev.flags = PAIR_FOREIGN;
		} else if (!live(e, framep(s, ctx))) {
			ev.flags = PAIR_STALE;
		} else {
			ev.flags = PAIR_NETNS;
			ev.ns_id = e->ns_id;
			ev.ns_inum = e->ns_inum;
		}
	}
	if (bpf_ringbuf_output(&pairs, &ev, sizeof(ev), 0))
		count(CNT_RINGFULL);
	return 0;
}
