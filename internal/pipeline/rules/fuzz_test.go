package rules

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every failure is an
// ErrorList of positioned errors wrapping ErrInvalid, and that a parsed
// Set's canonical form parses back to the same canonical form.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/example.rules", "testdata/bad.rules"} {
		file, err := os.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			f.Add(sc.Text())
		}
		file.Close()
	}
	for _, s := range []string{
		"", "-a", "-a keep", `-a keep -F exe="a b"`, `-a keep -F exe="\\\""`, "-a keep -Fpid>=1",
		"-a keep,stream=x,host,container -F contid=none -F key=k -F type=UNKNOWN[2901]",
		"-a drop -F syscall=openat -F uid!=unset", "#", "-a keep # c", "-a keep -F exe=\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		set, err := Parse(strings.NewReader(src), "fuzz")
		if err != nil {
			if set != nil {
				t.Fatal("a Set and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors {
				t.Fatalf("error %v is no ErrorList", err)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || !errors.Is(e, ErrInvalid) {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		canon := set.String()
		again, err := Parse(strings.NewReader(canon), "canon")
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", canon, err)
		}
		if again.String() != canon || again.Len() != set.Len() {
			t.Fatalf("canonical form changed:\n%q\n%q", canon, again.String())
		}
		var v View
		set.Decide(v)
		set.Decide(syscallView())
	})
}
