package shorten

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "fits", in: "abc", n: 3, want: "abc"},
		{name: "empty", in: "", n: 3, want: ""},
		{name: "cut", in: "abcdefgh", n: 6, want: "abc..."},
		{name: "only the dots fit", in: "abcd", n: 3, want: "..."},
		// "é" is two bytes: a cut inside it backs off to before it.
		{name: "on a rune boundary", in: "abécde", n: 6, want: "ab..."},
		{name: "after a whole rune", in: "abécdef", n: 7, want: "abé..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := String(tc.in, tc.n)
			if got != tc.want {
				t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
			if len(got) > tc.n || !utf8.ValidString(got) {
				t.Errorf("String(%q, %d) = %q: %d bytes, valid UTF-8 %v", tc.in, tc.n, got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestList(t *testing.T) {
	items := []string{"alpha (1)", "beta (2)", "gamma (3)"}
	tests := []struct {
		budget int
		want   string
	}{
		{100, "alpha (1), beta (2), gamma (3)"},
		{30, "alpha (1), beta (2), gamma (3)"},
		{29, "alpha (1), beta (2), +1 more"},
		{28, "alpha (1), beta (2), +1 more"},
		{27, "alpha (1), +2 more"},
		{18, "alpha (1), +2 more"},
		{17, "+3 more"},
		{5, "+3 more"},
	}
	for _, tc := range tests {
		got := List(items, tc.budget)
		if got != tc.want {
			t.Errorf("List(budget %d) = %q, want %q", tc.budget, got, tc.want)
		}
		if len(got) > tc.budget && tc.budget >= len("+3 more") {
			t.Errorf("List(budget %d) = %q, %d bytes", tc.budget, got, len(got))
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"plain text, é", 100, "plain text, é"},
		{"red \x1b[31mtext\x1b[0m", 100, "red ?[31mtext?[0m"},
		{"line\nbreak\ttab\r", 100, "line?break?tab?"},
		{"bad \xff utf-8", 100, "bad ? utf-8"},
		{"abcdefgh", 6, "abc..."},
	}
	for _, tc := range tests {
		if got := Printable(tc.in, tc.n); got != tc.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// FuzzPrintable: the output of Printable is valid UTF-8 of printable runes
// only, at most n bytes, and the input itself when it already was so.
func FuzzPrintable(f *testing.F) {
	f.Add("plain", 10)
	f.Add("\x1b]0;title\x07\r\n\u202eevil\u200b", 8)
	f.Add("\xff\xfeé", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = 3 + abs(n)%300
		got := Printable(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("Printable(%q, %d) = %q: too long or not UTF-8", s, n, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("Printable(%q, %d) = %q holds %U", s, n, got, r)
			}
		}
		if got != Printable(got, n) {
			t.Fatalf("Printable is not idempotent on %q", s)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
