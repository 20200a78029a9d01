package records

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestAppendJSON(t *testing.T) {
	st := Stamp{Sec: 1700000000, Msec: 7, Serial: 42}
	head := `{"type":"%s","type_num":%d,"time":"2023-11-14T22:13:20.007Z","sec":1700000000,"msec":7,"serial":42`
	tests := []struct {
		name string
		r    Record
		want string
	}{
		{
			name: "container id: list of chains",
			r:    Record{Type: ContainerID, Stamp: st, Fields: []Field{pf("record", "1"), pf("contid", "4,^2,7")}},
			want: fmt.Sprintf(head, "CONTAINER_ID", 2901) + `,"fields":{"record":1,"contid":[[4,2],[7]]}}`,
		},
		{
			name: "container id: -1 and invalid",
			r:    Record{Type: ContainerID, Stamp: st, Fields: []Field{pf("contid", "-1"), pf("old-contid", "^4"), pf("x", "1")}},
			want: fmt.Sprintf(head, "CONTAINER_ID", 2901) + `,"fields":{"contid":null,"old-contid":"^4","x":1}}`,
		},
		{
			name: "other records: one chain",
			r: Record{Type: ContainerOp, Stamp: st, Node: "n\"1", Fields: []Field{
				pf("contid", "4,^2"), pf("old-contid", "-1"), ef("x", "-1", Quoted),
			}},
			want: fmt.Sprintf(head, "CONTAINER_OP", 2900) + `,"node":"n\"1","fields":{"contid":[4,2],"old-contid":null,"x":"-1"}}`,
		},
		{
			name: "other records: several chains stay a string",
			r:    Record{Type: NSCreate, Stamp: st, Fields: []Field{pf("contid", "4,5"), pf("old-contid", "18446744073709551615")}},
			want: fmt.Sprintf(head, "NS_CREATE", 2904) + `,"fields":{"contid":"4,5","old-contid":"18446744073709551615"}}`,
		},
		{
			name: "numbers",
			r: Record{Type: 1300, Stamp: st, Fields: []Field{
				pf("a", "0"), pf("b", "-1"), pf("c", "007"), pf("d", "18446744073709551615"), pf("e", "18446744073709551616"),
				pf("f", "-9223372036854775808"), pf("g", "-9223372036854775809"), pf("h", "-0"), pf("i", "+1"), pf("j", "1e3"),
				pf("arch", "40000003"), pf("a0", "10"), pf("cap_fp", "20"), pf("cap_frootid", "0"), ef("k", "5", Quoted),
				ef("comm", "1", Hex), pf("l", ""),
			}},
			want: fmt.Sprintf(head, "SYSCALL", 1300) + `,"fields":{"a":0,"b":-1,"c":"007","d":18446744073709551615,"e":"18446744073709551616",` +
				`"f":-9223372036854775808,"g":"-9223372036854775809","h":"-0","i":"+1","j":"1e3",` +
				`"arch":"40000003","a0":"10","cap_fp":"20","cap_frootid":0,"k":"5","comm":"1","l":""}}`,
		},
		{
			name: "duplicates, keyless, null",
			r: Record{Type: 1400, Stamp: st, Fields: []Field{
				pf("", "avc:"), pf("a", "1"), pf("", "denied"), pf("a", "x"), pf("b", "(null)"), ef("c", "(null)", Null), pf("a", "3"),
			}},
			want: fmt.Sprintf(head, "AVC", 1400) + `,"fields":{"":["avc:","denied"],"a":[1,"x",3],"b":"(null)","c":null}}`,
		},
		{
			name: "msg and enriched objects",
			r: Record{Type: ContainerOp, Stamp: st, Fields: []Field{
				pf("pid", "1"), inMsg(pf("pid", "2")), inMsg(pf("contid", "4,^2")), enriched(ef("UID", "root", Quoted)),
				enriched(pf("SADDR", "{")), enriched(pf("saddr_fam", "inet")), enriched(pf("", "}")), enriched(pf("UID", "0")),
			}},
			want: fmt.Sprintf(head, "CONTAINER_OP", 2900) + `,"fields":{"pid":1},"msg":{"pid":2,"contid":[4,2]},` +
				`"enriched":{"UID":["root","0"],"SADDR":"{ saddr_fam=inet }"}}`,
		},
		{
			name: "strings are escaped",
			r: Record{Type: 1300, Stamp: st, Fields: []Field{
				ef("comm", "a\"b\\c\n\t\x01\x7f", Hex), ef("exe", "\xff\xfeok\u2028é", Hex), pf("k\"ey", "v"),
			}},
			want: fmt.Sprintf(head, "SYSCALL", 1300) + `,"fields":{"comm":"a\"b\\c\n\t\u0001` + "\x7f" + `","exe":"\ufffd\ufffdok\u2028é","k\"ey":"v"}}`,
		},
		{
			name: "raw only: parsed",
			r:    Record{Raw: "type=UNKNOWN[2901] msg=audit(1700000000.007:42): record=1 contid=4"},
			want: fmt.Sprintf(head, "CONTAINER_ID", 2901) + `,"fields":{"record":1,"contid":[[4]]}}`,
		},
		{
			name: "raw only: unparseable",
			r:    Record{Type: 1300, Stamp: st, Raw: "type=SYSCALL broken \xff"},
			want: fmt.Sprintf(head, "SYSCALL", 1300) + `,"fields":{},"raw":"type=SYSCALL broken \ufffd"}`,
		},
		{
			name: "unknown type",
			r:    Record{Type: 1999, Stamp: st},
			want: fmt.Sprintf(head, "UNKNOWN[1999]", 1999) + `,"fields":{}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendJSON(nil, &tt.r)
			if string(got) != tt.want {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
}

// Large objects take the map path for duplicates; it must agree with the
// small path.
func TestAppendJSONLarge(t *testing.T) {
	var fs []Field
	want := map[string]any{}
	for i := 0; i < 3*smallObject; i++ {
		k := fmt.Sprintf("k%d", i%(smallObject+7))
		fs = append(fs, pf(k, fmt.Sprint(i)))
		switch v := want[k].(type) {
		case nil:
			want[k] = float64(i)
		case float64:
			want[k] = []any{v, float64(i)}
		case []any:
			want[k] = append(v, float64(i))
		}
	}
	r := Record{Type: 1309, Fields: fs}
	out := AppendJSON(nil, &r)
	var got struct {
		Fields map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Fields, want) {
		t.Errorf("large object differs")
	}
	if strings.Count(string(out), `"k0":`) != 1 {
		t.Errorf("duplicate key written twice")
	}
}

func TestAppendJSONAlwaysValid(t *testing.T) {
	hostile := []string{"", "\x00", "\xff", "\xed\xa0\x80", "\"", "\\", "\u2028", "{", "}", "-", "4,^", "^4", "4,,5", "a\x1db"}
	for _, enc := range []Enc{Plain, Untrusted, Quoted, Hex, Null, Single} {
		for _, v := range hostile {
			for _, k := range []string{"", "contid", "old-contid", v} {
				r := Record{Type: ContainerID, Node: v, Fields: []Field{
					{Key: k, Value: v, Enc: enc}, {Key: k, Value: v, Enc: enc, InMsg: true},
					{Key: k, Value: v, Enc: enc, Enriched: true}, {Key: "SADDR", Value: "{", Enriched: true},
				}}
				if out := AppendJSON(nil, &r); !json.Valid(out) {
					t.Errorf("invalid JSON for key %q value %q enc %d: %s", k, v, enc, out)
				}
			}
		}
	}
}
