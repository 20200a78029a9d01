package contid

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		err  error
	}{
		{"0", 0, nil},
		{"4660", 4660, nil},
		{"18446744073709551614", Unset - 1, nil},
		{"18446744073709551615", 0, ErrUnset},
		{"18446744073709551616", 0, ErrRange},
		{"-1", 0, ErrSyntax},
		{"+5", 0, ErrSyntax},
		{" 5", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{"", 0, ErrSyntax},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestChainText(t *testing.T) {
	tests := []struct {
		chain Chain
		text  string
	}{
		{nil, "-1"},
		{Chain{4}, "4"},
		{Chain{4, 2, 1}, "4,^2,^1"},
		{Chain{0}, "0"},
	}
	for _, tt := range tests {
		if got := tt.chain.String(); got != tt.text {
			t.Errorf("%v.String() = %q, want %q", []ID(tt.chain), got, tt.text)
		}
		back, err := ParseChain(tt.text)
		if err != nil || !back.Equal(tt.chain) {
			t.Errorf("ParseChain(%q) = %v, %v", tt.text, back, err)
		}
	}
	if Unset.String() != "-1" {
		t.Error("Unset must print -1")
	}
	if !(Chain{4, 2, 1}).Contains(2) || (Chain{4, 2}).Contains(1) {
		t.Error("Contains")
	}
}

func TestParseList(t *testing.T) {
	l, err := ParseList("4,^2,7,9,^8")
	if err != nil || len(l) != 3 || l[0].String() != "4,^2" || l[1].String() != "7" || l[2].String() != "9,^8" {
		t.Fatalf("got %v, %v", l, err)
	}
	for _, bad := range []string{"", "^2", "4,,5", "4,^", "x", "4,^18446744073709551615", "18446744073709551616", "4,^-1"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) accepted", bad)
		}
	}
	if _, err := ParseChain("4,7"); err == nil {
		t.Error("ParseChain accepted two chains")
	}
}

// FuzzParseList: the text of every accepted list parses back to itself.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"4,^2,^1", "-1", "0", "4,^2,7", "18446744073709551614", "^1", ",", "1,^2,^3,4,^5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseList(s)
		if err != nil {
			return
		}
		var text string
		for i, c := range l {
			if i > 0 {
				text += ","
			}
			text += c.String()
		}
		if len(l) == 0 {
			text = "-1"
		}
		again, err := ParseList(text)
		if err != nil || len(again) != len(l) {
			t.Fatalf("%q -> %q does not parse back: %v", s, text, err)
		}
		for i := range l {
			if !again[i].Equal(l[i]) {
				t.Fatalf("%q -> %q changed", s, text)
			}
		}
	})
}
