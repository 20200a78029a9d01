package cli

import (
	"strings"
	"testing"
)

func TestAusearchArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"search -ts 12/04/26 14:00:00 -te today -k exec", []string{"search", "--ts", "12/04/26 14:00:00", "--te", "today", "-k", "exec"}},
		{"search -ts yesterday 14:00 -if /x -sv no", []string{"search", "--ts", "yesterday 14:00", "--if", "/x", "--sv", "no"}},
		{"search -ts 14:00 -ui 0", []string{"search", "--ts", "14:00", "--ui", "0"}},
		{"search -pp 1 -ua 0 -sc execve", []string{"search", "--pp", "1", "--ua", "0", "--sc", "execve"}},
		{"report -te now", []string{"report", "--te", "now"}},
		{"exec -ts 1", []string{"exec", "-ts", "1"}}, // other commands are left alone
		{"search -- -ts", []string{"search", "--", "-ts"}},
	}
	for _, tt := range tests {
		got := ausearchArgs(strings.Fields(tt.in))
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("ausearchArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
