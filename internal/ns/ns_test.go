package ns

import "testing"

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{"4:4026531840", ID{Dev: 4, Ino: 4026531840}, true},
		{"4:4026531840/17", ID{Dev: 4, Ino: 4026531840, Unique: 17}, true},
		{"4", ID{}, false},
		{"4:0", ID{}, false},
		{"4:4294967296", ID{}, false},
		{"x:5", ID{}, false},
		{"4:5/x", ID{}, false},
		{"", ID{}, false},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseID(%q) = %+v, %v", tt.in, got, err)
		}
	}
	if s := (ID{Dev: 4, Ino: 9, Unique: 3}).String(); s != "4:9" {
		t.Errorf("String() = %q", s)
	}
}

func TestTypes(t *testing.T) {
	for typ := Type(0); typ < NumTypes; typ++ {
		back, err := ParseType(typ.String())
		if err != nil || back != typ {
			t.Errorf("type %d: %q -> %d, %v", typ, typ.String(), back, err)
		}
	}
	if _, err := ParseType("bogus"); err == nil {
		t.Error("bogus type accepted")
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"4:4026531840", "4:1/2", ":", "/", "4:5/18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.Ino == 0 {
			t.Fatalf("%q: zero inode accepted", s)
		}
		back, err := ParseID(id.String())
		if err != nil || back.Dev != id.Dev || back.Ino != id.Ino {
			t.Fatalf("%q -> %q does not parse back", s, id.String())
		}
	})
}
