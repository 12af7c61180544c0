package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the guard's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	findings *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (for the
// manager's endpoint: sigs.k8s.io/controller-runtime/pkg/metrics.Registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_admission_requests_total",
			Help: "Admission requests reviewed, by kind, operation and verdict (allowed, denied, error).",
		}, []string{"kind", "operation", "verdict"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_findings_total",
			Help: "Rule findings, by rule, action and enforcement point.",
		}, []string{"rule", "action", "point"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiservice_guard_review_duration_seconds",
			Help:    "Time to evaluate the policy engine for one admission request.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 8),
		}, []string{"kind"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.findings, err = register(reg, m.findings); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under the
// same name (a second guard in one process, as in tests, shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
