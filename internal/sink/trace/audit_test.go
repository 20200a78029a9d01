package trace

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
)

// roundTrip encodes an audit item and decodes the line.
func roundTrip(t *testing.T, it any) any {
	t.Helper()
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	e.EncodeAudit(it)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	if err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	return got
}

func TestAuditItemsRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC).UnixNano()
	for _, it := range []any{
		AuditStart{Time: at, Mode: "primary", Self: 42, TimeoutMS: 2000, Filter: "-a never,host -k x\n"},
		AuditStart{Time: at, Mode: "listener", Self: 1},
		Batch{Time: at, Records: []records.Raw{
			{Type: 1300, Data: []byte(`audit(1764842400.123:77): arch=c000003e syscall=59 success=yes comm="sh"`)},
			{Type: 0, Data: []byte("type=EOE msg=audit(1764842400.123:77): \x1dx")},
			{Type: 1309, Data: []byte("not utf-8: \xff\xfe\x00")}, // base64
			{Type: 1320, Data: []byte{}},
		}},
		Tick{Time: at, Idle: true},
		Tick{Time: at},
		Loss{Time: at, Kind: "kernel", Count: 3, Sent: true},
		Loss{Time: at, Kind: "disk_full", Count: 1 << 40, Extra: []records.Field{{Key: "log", Value: "containers/5/audit.log"}}},
		Stop{Time: at},
		Unsent{Time: at, Count: 7},
	} {
		if got := roundTrip(t, it); !reflect.DeepEqual(got, it) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, it)
		}
	}
}

func TestSentRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	e.EncodeSent(engine.Exit{Time: 1, PID: 5}, nil, []bool{false, true})
	e.EncodeSent(engine.Exit{Time: 1, PID: 5}, nil, []bool{false}) // all local: no field
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), `"sent"`) != 1 {
		t.Fatalf("sent written where no record went to the kernel:\n%s", buf.String())
	}
	d := NewDecoder(&buf, "x")
	for _, want := range [][]bool{{false, true}, nil} {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d.Sent(), want) {
			t.Fatalf("sent %v, want %v", d.Sent(), want)
		}
	}
}

func TestAuditItemErrors(t *testing.T) {
	const ts = `"time":"2026-11-26T10:00:00Z"`
	for _, tt := range []struct{ line, want string }{
		{`{"op":"batch",` + ts + `}`, `missing "records"`},
		{`{"op":"batch",` + ts + `,"records":[{"type":1300}]}`, `record 1 needs one of "data" and "base64"`},
		{`{"op":"batch",` + ts + `,"records":[{"type":1300,"data":"a","base64":"YQ=="}]}`, `record 1 needs one of`},
		{`{"op":"batch",` + ts + `,"records":[{"type":1300,"base64":"!"}]}`, `"base64"`},
		{`{"op":"batch",` + ts + `,"records":[{"type":70000,"data":"a"}]}`, `"records" must be`},
		{`{"op":"loss",` + ts + `,"kind":"kernel"}`, `missing "count"`},
		{`{"op":"loss",` + ts + `,"kind":"kernel","count":1,"extra":{"a":"b"}}`, `"extra" must be`},
		{`{"op":"audit",` + ts + `,"mode":"primary"}`, `missing "self"`},
		{`{"op":"tick",` + ts + `,"idle":1}`, `"idle" must be true or false`},
		{`{"op":"stop",` + ts + `,"x":1}`, `op "stop" has no field "x"`},
		{`{"op":"unsent",` + ts + `}`, `missing "count"`},
		{`{"op":"exit",` + ts + `,"pid":1,"sent":[1]}`, `"sent" must be a list of true or false`},
	} {
		_, err := Decode([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.line, err, tt.want)
		}
	}
}
