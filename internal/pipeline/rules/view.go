package rules

import (
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Fill sets v from an event's records and the contid chains attached to
// it (chains is kept, not copied). It reuses v.Types's memory, so a View
// filled again and again does not allocate once Types has grown.
//
// The subject record is the event's SYSCALL record, else its first record
// with a pid= field other than a CONTAINER_ID (a user record, SECCOMP,
// LOGIN, a standalone AVC …). PID, UID, AUID, Syscall, Arch and Exe come
// from it, each only if present and well-formed (exe=(null) is absent);
// Keys is the first key= of the event that is not (null), decoded (the
// kernel writes several keys hex-encoded, separated by 0x01).
func (v *View) Fill(recs []records.Record, chains []contid.Chain) {
	v.Types = v.Types[:0]
	v.Chains = chains
	v.Keys, v.Exe = "", ""
	v.PID, v.UID, v.AUID, v.Syscall, v.Arch = 0, 0, 0, 0, 0
	v.Has = 0
	subject := -1
	for i := range recs {
		r := &recs[i]
		v.Types = append(v.Types, r.Type)
		if r.Type == records.Syscall && (subject < 0 || recs[subject].Type != records.Syscall) {
			subject = i
		}
		if subject < 0 && r.Type != records.ContainerID && fieldOf(r, "pid") != nil {
			subject = i
		}
		if v.Keys == "" {
			if f := fieldOf(r, "key"); f != nil && f.Enc != records.Null {
				v.Keys = f.Value
			}
		}
	}
	if subject < 0 {
		return
	}
	s := &recs[subject]
	v.PID, v.Has = number(s, "pid", 10, v.PID, v.Has, HasPID)
	v.UID, v.Has = number(s, "uid", 10, v.UID, v.Has, HasUID)
	v.AUID, v.Has = number(s, "auid", 10, v.AUID, v.Has, HasAUID)
	v.Syscall, v.Has = number(s, "syscall", 10, v.Syscall, v.Has, HasSyscall)
	v.Arch, v.Has = number(s, "arch", 16, v.Arch, v.Has, HasArch)
	if f := fieldOf(s, "exe"); f != nil && f.Enc != records.Null {
		v.Exe = f.Value
		v.Has |= HasExe
	}
}

// fieldOf returns the first field named key of r (ENRICHED ones aside).
func fieldOf(r *records.Record, key string) *records.Field {
	for i := range r.Fields {
		if f := &r.Fields[i]; f.Key == key && !f.Enriched {
			return f
		}
	}
	return nil
}

func number(r *records.Record, key string, base int, old uint32, has, bit Has) (uint32, Has) {
	f := fieldOf(r, key)
	if f == nil {
		return old, has
	}
	x, err := strconv.ParseUint(f.Value, base, 32)
	if err != nil {
		return old, has
	}
	return uint32(x), has | bit
}
