// Package contid holds the audit container identifier and its chain form
// (spec §2): a contid is an unsigned 64-bit value, 2^64−1 means unset, and a
// chain lists a task's contid followed by its ancestors' ("4,^2,^1").
//
// The package is pure: no I/O, no state; all functions are safe for
// concurrent use.
package contid

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ID is an audit container identifier. 0 is a valid ID.
type ID uint64

// Unset is the reserved value meaning "no contid"; it can never be registered.
const Unset ID = 1<<64 - 1

// String formats the ID in decimal; Unset is written as "-1" as in old-contid=.
func (id ID) String() string {
	if id == Unset {
		return "-1"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// Parse errors; both wrap strconv's so callers can map them to EINVAL/ERANGE.
var (
	ErrSyntax = errors.New("contid: not an unsigned decimal 64-bit value")
	ErrRange  = errors.New("contid: value out of the 64-bit range")
	ErrUnset  = errors.New("contid: 18446744073709551615 means unset and cannot be set")
)

// Parse reads a decimal contid as written to the API or CLI. The unset value
// is rejected with ErrUnset so that a set request can never carry it.
func Parse(s string) (ID, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, ErrRange
	case err != nil:
		return 0, ErrSyntax
	case ID(v) == Unset:
		return 0, ErrUnset
	}
	return ID(v), nil
}

// Chain is a contid followed by the contids of its ancestor containers,
// innermost first. The empty chain means the task has no contid.
type Chain []ID

// String writes the chain as "4,^2,^1", or "-1" when empty.
func (c Chain) String() string {
	if len(c) == 0 {
		return "-1"
	}
	return string(c.Append(nil))
}

// Append appends the chain's text form to b without allocating beyond b's growth.
func (c Chain) Append(b []byte) []byte {
	if len(c) == 0 {
		return append(b, "-1"...)
	}
	for i, id := range c {
		if i > 0 {
			b = append(b, ",^"...)
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return b
}

// AppendChainsJSON appends chains as a JSON array of arrays of numbers,
// innermost first: [[4,2,1],[7]]. It is the "contid" member of an event in
// contid's JSON form.
func AppendChainsJSON(b []byte, chains []Chain) []byte {
	b = append(b, '[')
	for i, c := range chains {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, id := range c {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(id), 10)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// Contains reports whether id is any element of the chain (spec §6: a parent
// ID selects its nested children).
func (c Chain) Contains(id ID) bool {
	for _, x := range c {
		if x == id {
			return true
		}
	}
	return false
}

// Equal reports whether two chains are element-wise equal.
func (c Chain) Equal(o Chain) bool {
	if len(c) != len(o) {
		return false
	}
	for i := range c {
		if c[i] != o[i] {
			return false
		}
	}
	return true
}

// ParseList parses a comma-separated list of chains as written in a
// CONTAINER_ID contid= field: an element without "^" starts a new chain and
// each "^N" element is an ancestor of the preceding chain ("4,^2,7" is the two
// chains 4,^2 and 7). "-1" is the empty list.
func ParseList(s string) ([]Chain, error) {
	if s == "-1" {
		return nil, nil
	}
	if s == "" {
		return nil, fmt.Errorf("contid: empty chain list")
	}
	var out []Chain
	for _, tok := range strings.Split(s, ",") {
		anc := strings.HasPrefix(tok, "^")
		if anc {
			tok = tok[1:]
		}
		v, err := strconv.ParseUint(tok, 10, 64)
		if err != nil || ID(v) == Unset {
			return nil, fmt.Errorf("contid: bad chain element %q in %q", tok, s)
		}
		switch {
		case anc && len(out) == 0:
			return nil, fmt.Errorf("contid: chain %q starts with an ancestor", s)
		case anc:
			out[len(out)-1] = append(out[len(out)-1], ID(v))
		default:
			out = append(out, Chain{ID(v)})
		}
	}
	return out, nil
}

// ParseChain parses exactly one chain ("4,^2,^1" or "-1" for none).
func ParseChain(s string) (Chain, error) {
	l, err := ParseList(s)
	if err != nil {
		return nil, err
	}
	switch len(l) {
	case 0:
		return nil, nil
	case 1:
		return l[0], nil
	}
	return nil, fmt.Errorf("contid: %q holds %d chains, want one", s, len(l))
}
