package netpkt

import "strings"

// Hooks is a set of IPv4 and IPv6 netfilter hooks: where a namespace has
// audit packet rules, and so where its traversals need the pairing
// programs. A record can only be logged at a hook where such a rule runs.
type Hooks uint16

// The netfilter families and hooks a netfilter BPF link can attach to.
const (
	famIPv4 = 2  // NFPROTO_IPV4
	famIPv6 = 10 // NFPROTO_IPV6
	famInet = 1  // NFPROTO_INET: an nftables table for both
	nHooks  = 5  // NF_INET_PRE_ROUTING … NF_INET_POST_ROUTING
)

// AllHooks is every hook of both families.
const AllHooks Hooks = 1<<(2*nHooks) - 1

var hookNames = [nHooks]string{"prerouting", "input", "forward", "output", "postrouting"}

// hookOf is the set holding one hook of one family (famIPv4 or famIPv6);
// nothing for another family or hook.
func hookOf(family byte, hook int) Hooks {
	if hook < 0 || hook >= nHooks {
		return 0
	}
	switch family {
	case famIPv4:
		return 1 << hook
	case famIPv6:
		return 1 << (nHooks + hook)
	case famInet:
		return hookOf(famIPv4, hook) | hookOf(famIPv6, hook)
	}
	return 0
}

func (h Hooks) String() string {
	var parts []string
	for i := 0; i < 2*nHooks; i++ {
		if h&(1<<i) != 0 {
			fam := "ipv4/"
			if i >= nHooks {
				fam = "ipv6/"
			}
			parts = append(parts, fam+hookNames[i%nHooks])
		}
	}
	return strings.Join(parts, ",")
}

// chain is what a namespace's nftables ruleset says about one chain.
type chain struct {
	family byte // NFPROTO_* of its table
	table  string
	hook   int // NF_INET_* of a base chain; -1 for a regular chain
	// audit: a rule of the chain writes packet records (an AUDIT target,
	// or log level audit), or its rules could not be read.
	audit bool
}

// auditHooks is where records can be logged: the hook of each base chain
// with an audit rule and, for an audit rule in a regular chain (reached by
// jumps only from chains of its own table), every hook of its table's base
// chains. Hooks of other families (bridge, arp, netdev) and the inet
// ingress hook have no netfilter BPF link and are left out.
func auditHooks(chains []chain) Hooks {
	type tkey struct {
		family byte
		table  string
	}
	base := map[tkey]Hooks{}
	for _, c := range chains {
		if c.hook >= 0 {
			base[tkey{c.family, c.table}] |= hookOf(c.family, c.hook)
		}
	}
	var h Hooks
	for _, c := range chains {
		switch {
		case !c.audit:
		case c.hook >= 0:
			h |= hookOf(c.family, c.hook)
		default:
			h |= base[tkey{c.family, c.table}]
		}
	}
	return h
}
