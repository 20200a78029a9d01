package records

import (
	"strconv"
	"strings"
)

// ForgedKey is the field MarkForged puts first in a marked record: the
// type the record arrived with.
const ForgedKey = "forged-type"

// MarkForged returns r, a record of one of contid's types that contid did
// not send, as contid writes it: type CONTID_FORGED (2908) and a first
// field forged-type=<the type it arrived with>, the rest unchanged. Raw is
// rewritten the same way, so the sender's text stays byte for byte:
//
//	type=UNKNOWN[2900] msg=audit(1.2:3): pid=…   becomes
//	type=UNKNOWN[2908] msg=audit(1.2:3): forged-type=2900 pid=…
//
// Why a new type rather than a field or a record after it: readers find
// contid's records by type (ausearch -m 2900, contid search), so a forged
// one must not have their type; a field alone would leave it in every such
// search. A sender cannot forge the mark either: the type and the text
// before the kernel's pid= are written by contid, and everything a sender
// controls sits inside msg='…' after it. Stock ausearch reads the line as
// any user record (-m 2908, -p with the sender's pid; measured, 3.0.9).
func MarkForged(r Record) Record {
	orig := r.Type
	r.Type = ContidForged
	f := make([]Field, 0, len(r.Fields)+1)
	f = append(f, Field{Key: ForgedKey, Value: strconv.Itoa(int(orig))})
	r.Fields = append(f, r.Fields...)
	if r.Raw != "" {
		r.Raw = markRaw(r.Raw, orig) // "" when the line has an unexpected shape: written from Fields
	}
	return r
}

// markRaw rewrites the type and inserts forged-type= after the header, or
// returns "" when line does not start as an audit record does.
func markRaw(line string, orig Type) string {
	rest := line
	node := ""
	if strings.HasPrefix(rest, "node=") {
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return ""
		}
		node, rest = rest[:i+1], rest[i+1:]
	}
	if !strings.HasPrefix(rest, "type=") {
		return ""
	}
	i := strings.IndexByte(rest, ' ')
	if i < 0 || !strings.HasPrefix(rest[i+1:], "msg=audit(") {
		return ""
	}
	rest = rest[i+1:]
	j := strings.Index(rest, "): ")
	if j < 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(len(line) + 32)
	b.WriteString(node)
	b.WriteString("type=")
	b.Write(appendRawName(nil, ContidForged))
	b.WriteByte(' ')
	b.WriteString(rest[:j+3])
	b.WriteString(ForgedKey + "=")
	b.WriteString(strconv.Itoa(int(orig)))
	b.WriteByte(' ')
	b.WriteString(rest[j+3:])
	return b.String()
}
