package fleet

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/contid/contid/internal/contid"
)

// Subjects:
//
//	contid.<host>.h                          an event outside any container
//	contid.<host>.c.<outer>.….<inner>.e      an event of a container chain
//
// The chain is written outermost first, so that the wildcard
// contid.<host>.c.<id>.> selects container id, when it is outermost, and
// everything nested in it; the closing "e" token makes a container's own
// events match that wildcard too (">" needs at least one token). A
// container at depth d (1 = outermost) is selected on every host by
// contid.*.c.(*.){d-1}<id>.> — see Filters.

// ErrHost is returned for a host name that cannot be a subject token.
var ErrHost = errors.New("fleet: host name must be 1-64 letters, digits, '-' or '_'")

// CheckHost reports whether host can be a subject token and part of a
// stream name: 1–64 of [A-Za-z0-9_-].
func CheckHost(host string) error {
	if len(host) == 0 || len(host) > 64 {
		return ErrHost
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ErrHost
		}
	}
	return nil
}

// StreamName is the name of host's stream: one stream per host, so that
// the stream's last message id orders the host's messages (see Publisher).
func StreamName(prefix, host string) string { return prefix + "_" + host }

// HostSubjects is the subject filter of everything host publishes.
func HostSubjects(host string) string { return "contid." + host + ".>" }

// MaxDepth is the deepest chain a subject spells out; a subject stays far
// below the server's 4 KiB control line. A deeper chain's subject holds
// its outermost MaxDepth contids and then "more": Filters selects those
// subjects for every query by contid, and the reader filters them.
const MaxDepth = 32

// AppendSubject appends the subject of an event with chain c (innermost
// first; empty for an event outside any container).
func AppendSubject(b []byte, host string, c contid.Chain) []byte {
	b = append(b, "contid."...)
	b = append(b, host...)
	if len(c) == 0 {
		return append(b, ".h"...)
	}
	b = append(b, ".c"...)
	stop := 0
	if len(c) > MaxDepth {
		stop = len(c) - MaxDepth
	}
	for i := len(c) - 1; i >= stop; i-- {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(c[i]), 10)
	}
	if stop > 0 {
		b = append(b, ".more"...)
	}
	return append(b, ".e"...)
}

// ParseSubject returns the host and chain (innermost first) of a subject
// AppendSubject wrote.
func ParseSubject(s string) (host string, c contid.Chain, err error) {
	toks := split(s)
	if len(toks) < 3 || toks[0] != "contid" || CheckHost(toks[1]) != nil {
		return "", nil, fmt.Errorf("fleet: subject %q: not contid.<host>.…", s)
	}
	host = toks[1]
	switch {
	case len(toks) == 3 && toks[2] == "h":
		return host, nil, nil
	case len(toks) >= 5 && toks[2] == "c" && toks[len(toks)-1] == "e":
		last := len(toks) - 2
		if toks[last] == "more" {
			last-- // a deeper chain: its outermost MaxDepth only
		}
		for i := last; i >= 3; i-- {
			id, err := contid.Parse(toks[i])
			if err != nil {
				return "", nil, fmt.Errorf("fleet: subject %q: %w", s, err)
			}
			c = append(c, id)
		}
		if len(c) == 0 {
			return "", nil, fmt.Errorf("fleet: subject %q: no contid", s)
		}
		return host, c, nil
	}
	return "", nil, fmt.Errorf("fleet: subject %q: neither .h nor .c.<chain>.e", s)
}

func split(s string) []string {
	var out []string
	for {
		i := 0
		for i < len(s) && s[i] != '.' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			return out
		}
		s = s[i+1:]
	}
}

// Filters returns subject filters that together select, on host ("*" for
// every host), the events whose chain holds one of ids — or, with exact,
// whose innermost contid is one of them — and the chains deeper than
// MaxDepth, which the reader must filter itself. No ids selects every
// event of the host. The filters may overlap.
func Filters(host string, ids []contid.ID, exact bool) []string {
	if len(ids) == 0 {
		return []string{HostSubjects(host)}
	}
	deep := "contid." + host + ".c"
	for range MaxDepth {
		deep += ".*"
	}
	out := []string{deep + ".more.e"}
	for _, id := range ids {
		for d := 1; d <= MaxDepth; d++ {
			b := []byte("contid." + host + ".c")
			for range d - 1 {
				b = append(b, ".*"...)
			}
			b = append(b, '.')
			b = strconv.AppendUint(b, uint64(id), 10)
			if exact {
				b = append(b, ".e"...)
			} else {
				b = append(b, ".>"...)
			}
			out = append(out, string(b))
		}
	}
	return out
}
