// Package safelog makes what the guard logs printable: text in its logs
// comes from objects (names, field managers, finding messages, decoding
// errors that quote a request), and a log is read on a terminal.
package safelog

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-logr/logr"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
)

// MaxValueLength caps each string logged: a message, a name, a value.
const MaxValueLength = 2048

// Wrap returns l with every message, name, string value, error and
// fmt.Stringer value made printable (shorten.Printable) and capped at
// MaxValueLength bytes. Other values are logged as they are.
func Wrap(l logr.Logger) logr.Logger {
	inner := l.GetSink()
	if inner == nil {
		return l
	}
	return logr.New(&sink{inner: inner})
}

// sink cleans what it logs. Values given to WithValues wait in pending
// until the first line is logged through it: a request's logger carries
// values for every request (controller-runtime's webhook adds six), and
// most requests log nothing.
type sink struct {
	inner   logr.LogSink
	pending []any
	once    sync.Once
	bound   logr.LogSink // inner with pending, once a line is logged
}

// Init reports the caller one frame further up, past this sink, when the
// inner sink can.
func (s *sink) Init(logr.RuntimeInfo) {
	if cd, ok := s.inner.(logr.CallDepthLogSink); ok {
		s.inner = cd.WithCallDepth(1)
	}
}

func (s *sink) Enabled(level int) bool { return s.inner.Enabled(level) }

func (s *sink) Info(level int, msg string, keysAndValues ...any) {
	s.withPending().Info(level, clean(msg), values(keysAndValues)...)
}

func (s *sink) Error(err error, msg string, keysAndValues ...any) {
	if err != nil {
		err = errors.New(clean(err.Error()))
	}
	s.withPending().Error(err, clean(msg), values(keysAndValues)...)
}

// withPending is the inner sink with the pending values, cleaned and
// bound the first time it is needed.
func (s *sink) withPending() logr.LogSink {
	if len(s.pending) == 0 {
		return s.inner
	}
	s.once.Do(func() { s.bound = s.inner.WithValues(values(s.pending)...) })
	return s.bound
}

func (s *sink) WithValues(keysAndValues ...any) logr.LogSink {
	return &sink{inner: s.inner, pending: slices.Concat(s.pending, keysAndValues)}
}

func (s *sink) WithName(name string) logr.LogSink {
	return &sink{inner: s.inner.WithName(clean(name)), pending: s.pending}
}

func clean(s string) string { return shorten.Printable(s, MaxValueLength) }

// values returns keysAndValues with the text in them cleaned; the slice
// given is not modified.
func values(keysAndValues []any) []any {
	out := make([]any, len(keysAndValues))
	for i, v := range keysAndValues {
		switch v := v.(type) {
		case string:
			out[i] = clean(v)
		case error:
			out[i] = clean(v.Error())
		case fmt.Stringer:
			out[i] = clean(v.String())
		case []string:
			c := make([]string, len(v))
			for j, s := range v {
				c[j] = clean(s)
			}
			out[i] = c
		default:
			out[i] = v
		}
	}
	return out
}
