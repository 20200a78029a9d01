package netpkt

import (
	"bytes"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rulesetHooks reads where the calling thread's network namespace has
// audit packet rules. The thread must be locked in that namespace (the
// netlink socket and /proc/thread-self/net are the thread's).
//
// nftables (and iptables-nft, whose AUDIT target is an xt "target"
// expression) are read over netlink. The legacy x_tables are not parsed:
// a namespace with any legacy table of a family is taken to have audit
// rules at every hook of that family. A chain whose rules cannot be read
// counts as having one. Taking too many hooks costs time, too few would
// leave records unpaired; neither pairs a record with the wrong namespace.
func rulesetHooks() (h Hooks, err error) {
	// The ruleset is a container's to write: whatever the parsing library
	// makes of it, a failure to read it means every hook, not a crash.
	defer func() {
		if r := recover(); r != nil {
			h, err = AllHooks, fmt.Errorf("nftables: reading the ruleset: %v", r)
		}
	}()
	for _, l := range []struct {
		file string
		fam  byte
	}{{"ip_tables_names", famIPv4}, {"ip6_tables_names", famIPv6}} {
		b, err := os.ReadFile("/proc/thread-self/net/" + l.file)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			for hk := 0; hk < nHooks; hk++ {
				h |= hookOf(l.fam, hk)
			}
		}
	}
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return AllHooks, fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	chs, err := c.ListChains()
	if err != nil {
		return AllHooks, fmt.Errorf("nftables: chains: %w", err)
	}
	var chains []chain
	for _, ch := range chs {
		if ch.Table == nil {
			continue
		}
		fam := byte(ch.Table.Family)
		if fam != famIPv4 && fam != famIPv6 && fam != famInet {
			continue // no netfilter BPF link there
		}
		cn := chain{family: fam, table: ch.Table.Name, hook: -1}
		if ch.Hooknum != nil {
			cn.hook = int(*ch.Hooknum)
		}
		rules, err := c.GetRules(ch.Table, ch)
		cn.audit = err != nil || hasAuditRule(rules)
		chains = append(chains, cn)
	}
	return h | auditHooks(chains), nil
}

// hasAuditRule: a rule writes NETFILTER_PKT records (an AUDIT target, as
// iptables-nft adds it, or nftables' log level audit).
func hasAuditRule(rules []*nftables.Rule) bool {
	for _, r := range rules {
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Target:
				if e.Name == "AUDIT" {
					return true
				}
			case *expr.Log:
				if e.Key&(1<<unix.NFTA_LOG_LEVEL) != 0 && e.Level == expr.LogLevelAudit {
					return true
				}
			}
		}
	}
	return false
}
