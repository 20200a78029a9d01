// Package netpkt finds the network namespace of each NETFILTER_PKT record
// the kernel writes. The record itself carries no pid and no namespace; the
// kernel writes it from inside an iptables/ebtables AUDIT target or an
// nftables `log level audit` statement, during the netfilter hook
// traversal of the packet.
//
// Two kinds of BPF programs pair a record with that traversal (see
// docs/packets.md for the reasoning and the measurements):
//
//   - in each watched namespace, netfilter programs at the first and last
//     priority of each IPv4 and IPv6 hook where the namespace has audit
//     packet rules (read from its ruleset, hooks.go and ruleset_linux.go)
//     push and pop {skb, task, namespace} on a per-CPU stack (a drop pops
//     too, and the end of a softirq run drops what it left);
//   - a tp_btf program on kmem_cache_free fires when audit_log_end frees a
//     packet record's audit buffer, still inside the rule's call, and
//     reports the record's serial and stamp with the namespace on top of
//     its CPU's stack — or none, when no traversal of the current task is
//     open there, or the one on top has ended without closing (a stolen
//     packet: its struct nf_hook_state is no longer live on the stack).
//
// Pairs are a claim about one serial and stamp: the consumer uses a pair
// only for a NETFILTER_PKT record with exactly that serial and stamp.
package netpkt
