package trace

// The audit path's inputs: what a daemon with kernel audit on consumed
// beside the engine's inputs, so that a replay runs the same records
// through the same pipeline with the same clock.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/contid/contid/internal/records"
)

// AuditStart is the audit path as it was opened: the record source's
// mode, the daemon's pid (the pipeline trusts own records from it only),
// the reassembly timeout and the text of the filtering rules ("" for
// none).
type AuditStart struct {
	Time      int64
	Mode      string
	Self      int32
	TimeoutMS int64
	Filter    string
}

// Batch is one batch of records as the core handed it to the pipeline.
type Batch struct {
	Time    int64 // when it was recorded; replay does not use it
	Records []records.Raw
}

// Tick is the core's tick: the audit path advances event time to Time
// when Idle (no batch was waiting).
type Tick struct {
	Time int64
	Idle bool
}

// Loss is a CONTID_LOSS record the core wrote, Time its stamp; Sent: it
// went into the kernel's stream (and comes back in a later batch).
type Loss struct {
	Time  int64
	Kind  string
	Count uint64
	Extra []records.Field
	Sent  bool
}

// Stop marks the audit path's stop: the pipeline delivers what it holds.
type Stop struct{ Time int64 }

// Unsent is how many own records still queued for the kernel at stop were
// written to the host log instead: the last Count sent.
type Unsent struct {
	Time  int64
	Count int
}

// rawRecord is a record of a batch in a trace line: data as a JSON
// string when it is UTF-8, else base64 (records are untrusted bytes).
type rawRecord struct {
	Type   uint16  `json:"type"`
	Data   *string `json:"data,omitempty"`
	Base64 *string `json:"base64,omitempty"`
}

func appendBatch(b []byte, recs []records.Raw) []byte {
	b = append(key(b, "records"), '[')
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRaw(b, r)
	}
	return append(b, ']')
}

// appendRaw appends one record object.
func appendRaw(b []byte, r records.Raw) []byte {
	rr := rawRecord{Type: r.Type}
	s := string(r.Data)
	if utf8.ValidString(s) {
		rr.Data = &s
	} else {
		e := base64.StdEncoding.EncodeToString(r.Data)
		rr.Base64 = &e
	}
	j, _ := json.Marshal(rr) // strings and numbers always marshal
	return append(b, j...)
}

func (f *fields) batch(now int64) (any, error) {
	raw, ok := f.l["records"]
	if !ok {
		return nil, fmt.Errorf("missing \"records\"")
	}
	var rs []rawRecord
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("\"records\" must be a list of {\"type\":N,\"data\":\"…\"}")
	}
	b := Batch{Time: now, Records: make([]records.Raw, 0, len(rs))}
	for i, r := range rs {
		var data []byte
		switch {
		case r.Data != nil && r.Base64 == nil:
			data = []byte(*r.Data)
		case r.Base64 != nil && r.Data == nil:
			var err error
			if data, err = base64.StdEncoding.DecodeString(*r.Base64); err != nil {
				return nil, fmt.Errorf("record %d: \"base64\": %v", i+1, err)
			}
		default:
			return nil, fmt.Errorf("record %d needs one of \"data\" and \"base64\"", i+1)
		}
		b.Records = append(b.Records, records.Raw{Type: r.Type, Data: data})
	}
	return b, nil
}

func (f *fields) loss(now int64) (any, error) {
	ls := Loss{Time: now, Kind: f.str("kind", true), Count: f.required("count", 64)}
	if raw, ok := f.l["extra"]; ok && f.err == nil {
		var kv [][2]string
		if err := json.Unmarshal(raw, &kv); err != nil {
			return nil, fmt.Errorf("\"extra\" must be a list of [\"key\",\"value\"]")
		}
		for _, e := range kv {
			ls.Extra = append(ls.Extra, records.Field{Key: e[0], Value: e[1]})
		}
	}
	ls.Sent = f.bool("sent")
	return f.done(ls)
}

func (f *fields) auditStart(now int64) (any, error) {
	return f.done(AuditStart{
		Time:      now,
		Mode:      f.str("mode", true),
		Self:      f.pid("self", true),
		TimeoutMS: f.int("timeout_ms"),
		Filter:    f.str("filter", false),
	})
}

// encodeAudit writes the audit path's items; false for another type.
func encodeAudit(b []byte, it any) ([]byte, bool) {
	switch v := it.(type) {
	case AuditStart:
		b = head(b, "audit", v.Time)
		b = str(b, "mode", v.Mode)
		b = num(b, "self", int64(v.Self))
		b = num(b, "timeout_ms", v.TimeoutMS)
		if v.Filter != "" {
			b = str(b, "filter", v.Filter)
		}
	case Batch:
		b = head(b, "batch", v.Time)
		b = appendBatch(b, v.Records)
	case Tick:
		b = head(b, "tick", v.Time)
		b = flag(b, "idle", v.Idle)
	case Loss:
		b = head(b, "loss", v.Time)
		b = str(b, "kind", v.Kind)
		b = unum(b, "count", v.Count)
		if len(v.Extra) > 0 {
			kv := make([][2]string, len(v.Extra))
			for i, f := range v.Extra {
				kv[i] = [2]string{f.Key, f.Value}
			}
			j, _ := json.Marshal(kv)
			b = append(key(b, "extra"), j...)
		}
		if v.Sent {
			b = flag(b, "sent", true)
		}
	case Stop:
		b = head(b, "stop", v.Time)
	case Unsent:
		b = head(b, "unsent", v.Time)
		b = num(b, "count", int64(v.Count))
	default:
		return b, false
	}
	return b, true
}
