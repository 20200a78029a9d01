package oci

import (
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	s, err := ReadState(strings.NewReader(`{"ociVersion":"1.0.2","id":"web","status":"created","pid":4242,"bundle":"/b",
		"annotations":{"org.contid.contid":"77","io.kubernetes.cri.container-name":"nginx"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := Plan(s); r.PID != 4242 || r.Contid != "77" || r.Name != "web/nginx" {
		t.Fatalf("plan %+v", r)
	}
	s.Annotations = nil
	r := Plan(s)
	if r.Contid != Hash("web").String() || r.Name != "web" {
		t.Fatalf("plan without annotations %+v", r)
	}
}

func TestCapAllowed(t *testing.T) {
	named := State{ID: "3f2a9c", PID: 5, Annotations: map[string]string{CapAnnotation: "1", "org.contid.name": "ci-runner-7"}}
	bare := State{ID: "ci-runner-8", PID: 5, Annotations: map[string]string{CapAnnotation: "1"}}
	tests := []struct {
		patterns []string
		s        State
		want     bool
	}{
		{nil, named, false},
		{[]string{}, bare, false},
		{[]string{"*"}, named, true},
		{[]string{"ci-runner-*"}, named, true}, // by name
		{[]string{"ci-runner-*"}, bare, true},  // by id
		{[]string{"3f2a*"}, named, true},
		{[]string{"web", "db-*"}, named, false},
		{[]string{"ci-runner-7/*"}, named, false}, // the recorded "ID/NAME" is not what is matched
	}
	for _, tt := range tests {
		if got := CapAllowed(tt.patterns, tt.s); got != tt.want {
			t.Errorf("CapAllowed(%q, %s) = %v, want %v", tt.patterns, tt.s.ID, got, tt.want)
		}
	}
	if err := CheckPatterns([]string{"ok-*", "[x"}); err == nil || !strings.Contains(err.Error(), `"[x"`) {
		t.Errorf("CheckPatterns: %v", err)
	}
	if err := CheckPatterns([]string{""}); err == nil {
		t.Error("empty pattern accepted")
	}
}

func TestHashIsStable(t *testing.T) {
	// Pinned: changing the hash would change every container's contid.
	if got := Hash("web").String(); got != "3345785073928653811" {
		t.Fatalf("Hash(web) = %s", got)
	}
	if Hash("a") == Hash("b") || Hash("x")>>63 != 0 {
		t.Fatal("hash collides or sets the top bit")
	}
}

func TestReadStateRefuses(t *testing.T) {
	for _, in := range []string{
		``, `[]`, `{"id":"x"}`, `{"id":"","pid":5}`, `{"id":"x","pid":-1}`, `{"id":"x","pid":99999999}`,
		`{"id":"x","pid":5` + strings.Repeat(" ", MaxState) + `}`,
	} {
		if _, err := ReadState(strings.NewReader(in)); err == nil {
			t.Errorf("accepted %.40q", in)
		}
	}
}

func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"ociVersion":"1.0.2","id":"web","pid":4242,"annotations":{"org.contid.contid":"5"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadState(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if s.PID <= 0 || s.ID == "" {
			t.Fatalf("bad state accepted: %+v", s)
		}
		Plan(s)
	})
}
