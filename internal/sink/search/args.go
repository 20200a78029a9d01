package search

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Criteria are the search criteria as typed on the command line; Build
// turns them into a Query.
type Criteria struct {
	Contids  []string
	Exact    bool
	Start    string
	End      string
	Types    []string // names or numbers; each may be a comma-separated list
	PIDs     []string
	PPIDs    []string
	UIDs     []string // numbers or user names
	AUIDs    []string
	Keys     []string
	Exes     []string
	Syscalls []string // x86_64 names or numbers
	Success  string   // yes or no
	Serials  []string
}

// Build checks every value and returns the Query. Names are resolved
// here: user names through the host's user database.
func (c *Criteria) Build(clk Clock) (Query, error) {
	var q Query
	for _, s := range c.Contids {
		id, err := contid.Parse(s)
		if err != nil {
			return q, fmt.Errorf("--contid %q: %w", s, err)
		}
		q.Contids = append(q.Contids, id)
	}
	q.Exact = c.Exact
	var err error
	if c.Start != "" {
		if q.Start, err = ParseTime(c.Start, false, clk); err != nil {
			return q, fmt.Errorf("-ts: %w", err)
		}
		q.HasStart = true
	}
	if c.End != "" {
		if q.End, err = ParseTime(c.End, true, clk); err != nil {
			return q, fmt.Errorf("-te: %w", err)
		}
		q.HasEnd = true
	}
	for _, list := range c.Types {
		for _, s := range strings.Split(list, ",") {
			t, err := ParseType(s)
			if err != nil {
				return q, fmt.Errorf("-m: %w", err)
			}
			q.Types = append(q.Types, t)
		}
	}
	for _, p := range []struct {
		flag string
		in   []string
		out  *[]string
	}{{"-p", c.PIDs, &q.PIDs}, {"-pp", c.PPIDs, &q.PPIDs}} {
		for _, s := range p.in {
			v, ok := decimal(s)
			if !ok {
				return q, fmt.Errorf("%s %q: not a number", p.flag, s)
			}
			*p.out = append(*p.out, v)
		}
	}
	for _, p := range []struct {
		flag string
		in   []string
		out  *[]string
	}{{"-ui", c.UIDs, &q.UIDs}, {"-ua", c.AUIDs, &q.AUIDs}} {
		for _, s := range p.in {
			v, err := uid(s)
			if err != nil {
				return q, fmt.Errorf("%s %q: %w", p.flag, s, err)
			}
			*p.out = append(*p.out, v)
		}
	}
	q.Keys = append(q.Keys, c.Keys...)
	q.Exes = append(q.Exes, c.Exes...)
	for _, s := range c.Syscalls {
		n, err := ParseSyscall(s)
		if err != nil {
			return q, fmt.Errorf("-sc: %w", err)
		}
		q.Syscalls = append(q.Syscalls, strconv.Itoa(n))
	}
	switch c.Success {
	case "", "yes", "no":
		q.Success = c.Success
	default:
		return q, fmt.Errorf("-sv %q: want yes or no", c.Success)
	}
	for _, s := range c.Serials {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("-a %q: not an event serial", s)
		}
		q.Serials = append(q.Serials, v)
	}
	return q, nil
}

// ParseType reads a record type: a name (SYSCALL, CONTAINER_ID, NS_CHANGE,
// UNKNOWN[2901]; any case) or a number.
func ParseType(s string) (records.Type, error) {
	t, err := records.ParseType(strings.ToUpper(s))
	if err != nil {
		return 0, fmt.Errorf("record type %q: not a known name or a number", s)
	}
	return t, nil
}

// ParseSyscall reads an x86_64 syscall name or number.
func ParseSyscall(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	if n, ok := syscallsX8664[s]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("syscall %q: not an x86_64 syscall name or a number", s)
}

func uid(s string) (string, error) {
	if v, ok := decimal(s); ok {
		return v, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}
