// Package shorten cuts text that goes into bounded places: warning lines,
// audit annotations, Event notes, names kept in memory.
package shorten

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String cuts s to at most n bytes on a rune boundary, ending in "...";
// s is returned as is when it fits. n must be at least 3.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// List joins items with ", " in at most budget bytes, ending with "+N more"
// for the items that do not fit: "alpha (1), +2 more". When not even the
// first item fits, it is "+N more" alone.
func List(items []string, budget int) string { return Join(items, ", ", "+%d more", budget) }

// Join joins items with sep in at most budget bytes, ending with more (a
// format of the count) for the items that do not fit, as List does.
func Join(items []string, sep, more string, budget int) string {
	var b strings.Builder
	for i, item := range items {
		s := ""
		if i > 0 {
			s = sep
		}
		tail := ""
		if rest := len(items) - i - 1; rest > 0 {
			tail = sep + fmt.Sprintf(more, rest)
		}
		if b.Len()+len(s)+len(item)+len(tail) > budget {
			// The previous round made room for exactly this.
			b.WriteString(s + fmt.Sprintf(more, len(items)-i))
			break
		}
		b.WriteString(s + item)
	}
	return b.String()
}

// Printable replaces what a terminal would interpret in text taken from
// objects (control characters, escape sequences, other non-printable
// runes, invalid UTF-8) with "?", and cuts it to at most n bytes.
func Printable(s string, n int) string {
	if printableASCII(s) {
		return String(s, n) // the common case, with no rune to look at
	}
	return String(strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s), n)
}

// printableASCII reports whether s is all printable ASCII (space to '~').
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
