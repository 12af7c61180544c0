package safelog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"apiservice-guard.io/apiservice-guard/internal/safelog"
)

type name string

func (n name) String() string { return string(n) }

// TestWrapCleansEverythingLogged: text with control, escape and bidi
// characters, and too long, comes out printable and capped through every
// way into a log (message, name, values given before and with the call,
// errors, Stringers, string lists), in the console encoding (which escapes
// nothing) and in JSON; other values and the caller are untouched.
func TestWrapCleansEverythingLogged(t *testing.T) {
	const hostile = "evil\x1b]0;pwned\x07\r\n\u202eeman\u200b"
	long := strings.Repeat("x", 10*safelog.MaxValueLength)
	for _, devel := range []bool{true, false} {
		var buf bytes.Buffer
		l := safelog.Wrap(zap.New(zap.WriteTo(&buf), zap.UseDevMode(devel), zap.Level(zapcore.DebugLevel)))
		l = l.WithName("n-"+hostile).WithValues("pre", hostile)
		l.Info("info "+hostile, "s", hostile, "long", long, "list", []string{hostile}, "stringer", name(hostile), "n", 42, "d", 3*time.Second)
		l.V(1).Info("debug", "err", errors.New(hostile))
		l.Error(errors.New("failed: "+hostile), "error "+hostile, "s", hostile)
		out := buf.String()
		for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\u200b"} {
			if strings.Contains(out, bad) {
				t.Errorf("devel=%v: %q reached the log:\n%s", devel, bad, out)
			}
		}
		// Records start with a time (console) or "{" (JSON); the console
		// adds the stack of an error, on lines of its own. A newline from
		// an object must not start a line.
		records := 0
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			switch {
			case strings.HasPrefix(line, "{"), strings.HasPrefix(line, "20"):
				records++
			case strings.Contains(line, "eman"):
				t.Errorf("devel=%v: text from an object starts a line: %q", devel, line)
			}
		}
		if records != 3 {
			t.Errorf("devel=%v: %d records logged, want 3:\n%s", devel, records, out)
		}
		if strings.Contains(out, strings.Repeat("x", safelog.MaxValueLength+1)) {
			t.Errorf("devel=%v: a value longer than %d bytes was logged", devel, safelog.MaxValueLength)
		}
		for _, want := range []string{"42", "3s", "evil?"} {
			if !strings.Contains(out, want) {
				t.Errorf("devel=%v: %q missing from the log:\n%s", devel, want, out)
			}
		}
	}
}

// countingSink counts the calls to WithValues that reach it.
type countingSink struct {
	logr.LogSink
	withValues *int
}

func (c countingSink) WithValues(kv ...any) logr.LogSink {
	*c.withValues++
	return countingSink{LogSink: c.LogSink.WithValues(kv...), withValues: c.withValues}
}

// TestValuesWaitForALine: values given to WithValues reach the inner sink
// only when a line is logged, once however many lines follow, and still
// cleaned; a logger that logs nothing costs its inner sink nothing.
func TestValuesWaitForALine(t *testing.T) {
	var buf bytes.Buffer
	n := 0
	inner := zap.New(zap.WriteTo(&buf))
	l := safelog.Wrap(logr.New(countingSink{LogSink: inner.GetSink(), withValues: &n}))
	for i := range 100 {
		_ = l.WithValues("request", i, "name", "evil\x1b")
	}
	if n != 0 {
		t.Fatalf("%d WithValues reached the inner sink for loggers that logged nothing", n)
	}
	r := l.WithValues("request", 7, "name", "evil\x1b")
	r.Info("one")
	r.Info("two")
	if n != 1 {
		t.Errorf("WithValues reached the inner sink %d times for two lines, want once", n)
	}
	out := buf.String()
	if strings.Count(out, `"request":7`) != 2 || strings.Contains(out, "\x1b") || !strings.Contains(out, "evil?") {
		t.Errorf("the pending values were not logged cleaned with each line:\n%s", out)
	}
}
