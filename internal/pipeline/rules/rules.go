package rules

import (
	"strconv"
	"strings"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Route is a bit set of the fixed destinations.
type Route uint8

const (
	// Host is the host's audit log.
	Host Route = 1 << iota
	// Container is the per-container log of the event's innermost contid.
	Container
)

// Routes says where a kept event goes.
type Routes struct {
	Dest Route
	// Streams are the named extra destinations, in the order the rule
	// gives them. The slice belongs to the Set: read it, never modify it.
	Streams []string
}

// Has reports whether the fixed destination d is among the routes.
func (r Routes) Has(d Route) bool { return r.Dest&d != 0 }

// String returns the routes as a keep action lists them:
// "host,container,stream=NAME…", empty for none.
func (r Routes) String() string {
	var s []string
	if r.Has(Host) {
		s = append(s, "host")
	}
	if r.Has(Container) {
		s = append(s, "container")
	}
	for _, st := range r.Streams {
		s = append(s, "stream="+st)
	}
	return strings.Join(s, ",")
}

// Decision is what the rules decide for an event.
type Decision struct {
	// Drop means the event is written nowhere. Routes is then empty.
	Drop   bool
	Routes Routes
	// Rule is the index (from 0, in file order) of the rule that matched,
	// or -1 when none did and the default applies (keep, host and
	// container). Set.Line gives its line.
	Rule int
}

// defaultRoutes are the routes of keep without routes, and of an event no
// rule matches.
var defaultRoutes = Routes{Dest: Host | Container}

// Has says which scalar fields of a View are set.
type Has uint8

const (
	HasPID Has = 1 << iota
	HasUID
	HasAUID
	HasSyscall
	HasArch
	HasExe
)

// View is what the rules look at in an event. The caller fills it, with
// Fill or by hand; Decide only reads it.
type View struct {
	// Types are the types of the event's records (repeats allowed).
	Types []records.Type
	// Chains are the contid chains attached to the event: one per process
	// the event describes (spec §5.1), innermost contid first.
	Chains []contid.Chain
	// Keys is the audit key of the event as the kernel writes it: the keys
	// separated by 0x01; "" when the event has none.
	Keys string
	// Fields of the event's subject record, valid when Has says so.
	PID, UID, AUID uint32
	Syscall        uint32
	Arch           uint32 // AUDIT_ARCH_* value of arch=, e.g. 0xc000003e
	Exe            string
	Has            Has
}

type field uint8

const (
	fContid field = iota + 1
	fType
	fKey
	fPID
	fUID
	fAUID
	fSyscall
	fExe
)

var fieldNames = [...]string{
	fContid:  "contid",
	fType:    "type",
	fKey:     "key",
	fPID:     "pid",
	fUID:     "uid",
	fAUID:    "auid",
	fSyscall: "syscall",
	fExe:     "exe",
}

type op uint8

const (
	opEq op = iota + 1
	opNe
	opLt
	opGt
	opLe
	opGe
)

var opNames = [...]string{opEq: "=", opNe: "!=", opLt: "<", opGt: ">", opLe: "<=", opGe: ">="}

type cond struct {
	field  field
	op     op
	none   bool   // contid=none / contid!=none
	byName bool   // syscall given by name: x86_64 only
	num    uint64 // contid, type, pid, uid, auid, syscall
	str    string // key, exe; the syscall name
}

type rule struct {
	line   int
	drop   bool
	routes Routes
	conds  []cond // as written
	eval   []cond // the same, cheapest first: a conjunction's order is free
}

// cost orders conditions for evaluation: scalar compares first, then the
// scans of keys, types and chains.
func (c *cond) cost() int {
	switch c.field {
	case fKey:
		return 1
	case fType:
		return 2
	case fContid:
		return 3
	}
	return 0
}

// Set is a parsed rules file. It is immutable and safe for concurrent use.
type Set struct {
	name    string
	rules   []rule
	streams []string
}

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Line returns the line of rule i in the file.
func (s *Set) Line(i int) int { return s.rules[i].line }

// Streams returns the stream names the rules route to, sorted and without
// repeats, so the owner can check that each is defined. The slice belongs
// to the Set.
func (s *Set) Streams() []string { return s.streams }

// Decide returns the decision of the first rule whose conditions all hold
// for ev, or keep with the default routes (host, container) when none does.
// It does not allocate.
func (s *Set) Decide(ev View) Decision {
	for i := range s.rules {
		r := &s.rules[i]
		if r.matches(&ev) {
			if r.drop {
				return Decision{Drop: true, Rule: i}
			}
			return Decision{Routes: r.routes, Rule: i}
		}
	}
	return Decision{Routes: defaultRoutes, Rule: -1}
}

func (r *rule) matches(ev *View) bool {
	for i := range r.eval {
		if !r.eval[i].holds(ev) {
			return false
		}
	}
	return true
}

func (c *cond) holds(ev *View) bool {
	switch c.field {
	case fContid:
		return hasContid(ev.Chains, c) == (c.op == opEq)
	case fType:
		return hasType(ev.Types, records.Type(c.num)) == (c.op == opEq)
	case fKey:
		return hasKey(ev.Keys, c.str) == (c.op == opEq)
	case fPID:
		return ev.Has&HasPID != 0 && compare(uint64(ev.PID), c.op, c.num)
	case fUID:
		return ev.Has&HasUID != 0 && compare(uint64(ev.UID), c.op, c.num)
	case fAUID:
		return ev.Has&HasAUID != 0 && compare(uint64(ev.AUID), c.op, c.num)
	case fSyscall:
		if ev.Has&HasSyscall == 0 || c.byName && ev.Has&HasArch != 0 && ev.Arch != auditArchX86_64 {
			return false
		}
		return compare(uint64(ev.Syscall), c.op, c.num)
	case fExe:
		return ev.Has&HasExe != 0 && (ev.Exe == c.str) == (c.op == opEq)
	}
	return false
}

// hasContid reports, for contid=N, whether any element of any chain is N,
// and for contid=none, whether no chain has an element.
func hasContid(chains []contid.Chain, c *cond) bool {
	if c.none {
		for _, ch := range chains {
			if len(ch) > 0 {
				return false
			}
		}
		return true
	}
	for _, ch := range chains {
		if ch.Contains(contid.ID(c.num)) {
			return true
		}
	}
	return false
}

func hasType(types []records.Type, t records.Type) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// hasKey reports whether k is one of the 0x01-separated keys.
func hasKey(keys, k string) bool {
	// Keys are short: compare in place rather than search for separators.
	for len(keys) >= len(k) {
		if keys[:len(k)] == k && (len(keys) == len(k) || keys[len(k)] == keySep) {
			return true
		}
		i := 0
		for i < len(keys) && keys[i] != keySep {
			i++
		}
		if i == len(keys) {
			return false
		}
		keys = keys[i+1:]
	}
	return false
}

// unset is the uid and auid value of "no id" (an unset loginuid).
const unset = 1<<32 - 1

// keySep separates the keys of an event with several (auditctl -k a -k b).
const keySep = 0x01

func compare(v uint64, o op, w uint64) bool {
	switch o {
	case opEq:
		return v == w
	case opNe:
		return v != w
	case opLt:
		return v < w
	case opGt:
		return v > w
	case opLe:
		return v <= w
	case opGe:
		return v >= w
	}
	return false
}

// String returns the rules in canonical form, one per line: what Parse
// reads back as the same rules.
func (s *Set) String() string {
	var b strings.Builder
	for i := range s.rules {
		s.rules[i].appendTo(&b)
		b.WriteByte('\n')
	}
	return b.String()
}

func (r *rule) appendTo(b *strings.Builder) {
	b.WriteString("-a ")
	if r.drop {
		b.WriteString("drop")
	} else {
		b.WriteString("keep")
		if s := r.routes.String(); s != "" {
			b.WriteString("," + s)
		}
	}
	for i := range r.conds {
		c := &r.conds[i]
		b.WriteString(" -F ")
		b.WriteString(fieldNames[c.field])
		b.WriteString(opNames[c.op])
		switch {
		case c.field == fContid && c.none:
			b.WriteString("none")
		case c.field == fType:
			b.WriteString(records.Type(c.num).String())
		case c.field == fKey || c.field == fExe || c.byName:
			b.WriteString(quote(c.str))
		case (c.field == fUID || c.field == fAUID) && c.num == unset:
			b.WriteString("unset")
		default:
			b.WriteString(strconv.FormatUint(c.num, 10))
		}
	}
}

// quote returns v as a value token: as it is when it holds only bytes that
// need no quoting, else in double quotes with '"' and '\' escaped.
func quote(v string) string {
	plain := v != ""
	for i := 0; i < len(v) && plain; i++ {
		c := v[i]
		plain = c > ' ' && c != '"' && c != '\\' && c < 0x7f
	}
	if plain {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
