package trace

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
)

func TestDecodeOps(t *testing.T) {
	const ts = `"time":"2026-11-26T10:00:00.5Z"`
	now := int64(1795687200500000000)
	net := ns.ID{Dev: 4, Ino: 4026532300, Unique: 9}
	var set ns.Set
	set[ns.Net] = net
	tests := []struct {
		line string
		want engine.Input
	}{
		{`{"op":"fork",` + ts + `,"parent":1,"child":2}`, engine.Fork{Time: now, Parent: 1, Child: 2, ChildTGID: 2, Start: uint64(now)}},
		{`{"op":"fork",` + ts + `,"parent":1,"child":3,"tgid":1,"start":7,"contid":-1}`, engine.Fork{Time: now, Parent: 1, Child: 3, ChildTGID: 1, Start: 7, HasContid: true, Contid: contid.Unset}},
		{`{"op":"exit",` + ts + `,"pid":2}`, engine.Exit{Time: now, PID: 2}},
		{`{"op":"exec",` + ts + `,"pid":2,"comm":"sh","exe":"/bin/sh","uid":5}`, engine.Exec{Time: now, PID: 2, Comm: "sh", Exe: "/bin/sh", UID: 5, AUID: engine.UnsetID, Ses: engine.UnsetID, HasCreds: true}},
		{`{"op":"setns",` + ts + `,"pid":2,"ns":{"net":"4:4026532300/9"}}`, engine.NSChange{Time: now, PID: 2, Op: engine.Setns, NS: set}},
		{`{"op":"set",` + ts + `,"caller":2,"for_parent":true,"cap":true,"target":3,"contid":18446744073709551616}`, engine.SetContid{Time: now, Caller: engine.TaskRef{PID: 2}, ForParent: true, CallerCap: true, Target: 3, Value: "18446744073709551616"}},
		{`{"op":"capcontid",` + ts + `,"caller":2,"caller_start":4,"target":3,"value":"1"}`, engine.SetCapcontid{Time: now, Caller: engine.TaskRef{PID: 2, Start: 4}, Target: 3, Value: "1"}},
		{`{"op":"container",` + ts + `,"id":5,"owner":2,"owner_start":4,"name":"web"}`, engine.SeedContainer{Time: now, ID: 5, Owner: engine.TaskRef{PID: 2, Start: 4}, Parent: contid.Unset, Name: "web"}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.line))
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if !equalInput(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.line, got, tt.want)
		}
	}
}

func equalInput(a any, b engine.Input) bool {
	fa, ok1 := a.(engine.Fork)
	fb, ok2 := b.(engine.Fork)
	if ok1 && ok2 {
		return fa.Time == fb.Time && fa.Parent == fb.Parent && fa.Child == fb.Child && fa.ChildTGID == fb.ChildTGID &&
			fa.Start == fb.Start && fa.NS == fb.NS && fa.HasContid == fb.HasContid && fa.Contid == fb.Contid && (fa.Subject == nil) == (fb.Subject == nil)
	}
	return a == b
}

func TestDecoderSkipsCommentsAndCountsLines(t *testing.T) {
	d := NewDecoder(strings.NewReader("# c\n\n{\"op\":\"exit\",\"time\":\"2026-11-26T10:00:00Z\",\"pid\":9}\n{\"op\":1}\n"), "x")
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := d.Next()
	if err == nil || err.Error() != `x:4: "op" must be a string` {
		t.Fatalf("got %v", err)
	}
}

// FuzzDecode: no input panics, and a decoded input always has sane pids.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.trace")
	if len(files) == 0 {
		f.Fatal("no seed traces in testdata")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add([]byte(l))
		}
	}
	for _, l := range auditSeeds {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Decode(b)
		if err != nil {
			return
		}
		switch ev := in.(type) {
		case engine.Fork:
			if ev.Parent <= 0 || ev.Child <= 0 || ev.ChildTGID <= 0 {
				t.Fatalf("bad pids accepted: %+v", ev)
			}
		case engine.Exit:
			if ev.PID <= 0 {
				t.Fatalf("bad pid accepted: %+v", ev)
			}
		}
		if in, ok := in.(engine.Input); ok {
			// Whatever decodes must apply to an engine without panicking.
			engine.New(engine.Config{}).Apply(in)
			return
		}
		// An audit item encodes to a line that decodes to the same item.
		again := roundTrip(t, in)
		if !reflect.DeepEqual(again, in) {
			t.Fatalf("round trip changed the item:\n got %#v\nwant %#v", again, in)
		}
	})
}

// auditSeeds are lines of the audit path's items, for FuzzDecode.
var auditSeeds = []string{
	`{"op":"audit","time":"2026-12-04T10:00:00Z","mode":"primary","self":42,"timeout_ms":2000,"filter":"-a never,host\n"}`,
	`{"op":"batch","time":"2026-12-04T10:00:00Z","records":[{"type":1300,"data":"audit(1.002:3): a=b"},{"type":0,"base64":"//4A"}]}`,
	`{"op":"tick","time":"2026-12-04T10:00:01Z","idle":true}`,
	`{"op":"loss","time":"2026-12-04T10:00:01Z","kind":"disk_full","count":2,"extra":[["log","audit.log"]],"sent":true}`,
	`{"op":"stop","time":"2026-12-04T10:00:02Z"}`,
	`{"op":"unsent","time":"2026-12-04T10:00:02Z","count":3}`,
	`{"op":"exit","time":"2026-12-04T10:00:02Z","pid":9,"sent":[false,true]}`,
}
