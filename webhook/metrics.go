package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"apiservice-guard.io/apiservice-guard/internal/promreg"
)

// Metrics are the guard's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	findings *prometheus.CounterVec
	duration *prometheus.HistogramVec
	budget   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (for the
// manager's endpoint: sigs.k8s.io/controller-runtime/pkg/metrics.Registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_admission_requests_total",
			Help: "Admission requests reviewed, by kind, operation, verdict (allowed, denied, patched, error) and webhook (validate, mutate).",
		}, []string{"kind", "operation", "verdict", "webhook"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_findings_total",
			Help: "Rule findings, by rule, action and enforcement point.",
		}, []string{"rule", "action", "point"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiservice_guard_review_duration_seconds",
			Help:    "Time to evaluate the policy engine for one admission request.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 8),
		}, []string{"kind"}),
		budget: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_review_budget_exceeded_total",
			Help: "Reviews that did not finish within their time budget, by kind and reason (deadline: the rules ran out of time; queue: a slot for a large review never came free).",
		}, []string{"kind", "reason"}),
	}
	var err error
	if m.requests, err = promreg.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.findings, err = promreg.Register(reg, m.findings); err != nil {
		return nil, err
	}
	if m.duration, err = promreg.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.budget, err = promreg.Register(reg, m.budget); err != nil {
		return nil, err
	}
	return m, nil
}
