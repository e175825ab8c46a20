package main

import "testing"

// Process names are chosen by any user: none may reach a terminal raw.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":            "nginx",
		"a b\"c":           "a b\"c",
		"\x1b]0;owned\x07": `\x1b]0;owned\a`,
		"line\nfeed":       `line\nfeed`,
		"\xff":             `\xff`,
		"caf\u00e9":        "caf\u00e9",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
