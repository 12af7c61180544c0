package cabundle

import (
	"time"

	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Defaults of Options.
const (
	// DefaultInterval is how often an annotated APIService's source is re-read.
	DefaultInterval = 10 * time.Second
	// DefaultFieldManager is the server-side apply field manager.
	DefaultFieldManager = "apiservice-guard"
)

// Options configure a Syncer. Zero values take the documented defaults.
type Options struct {
	// Reader GETs Secrets and Certificates by name. It must not be a cache:
	// a cached Secret read would start a cluster-wide Secret informer, and a
	// stale one would hide a rotation. Required; in a manager, GetAPIReader().
	Reader client.Reader
	// Interval is how often each annotated APIService is reconciled again,
	// which bounds how long a rotated CA takes to reach its caBundle (Secrets
	// are not watched). Defaults to DefaultInterval (10s).
	Interval time.Duration
	// FieldManager is the server-side apply field manager that owns
	// spec.caBundle. Defaults to DefaultFieldManager ("apiservice-guard").
	FieldManager string
	// Recorder, when set, records an Event on the APIService for each update
	// and for each reason it was not updated. Defaults to no Events.
	Recorder events.EventRecorder
	// Now is the clock certificate validity is judged by. Defaults to time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FieldManager == "" {
		o.FieldManager = DefaultFieldManager
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
