package audit

import (
	"github.com/prometheus/client_golang/prometheus"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/internal/promreg"
)

// Metrics are the audit's Prometheus metrics.
type Metrics struct {
	findings  *prometheus.GaugeVec
	available *prometheus.GaugeVec
	lastRun   prometheus.Gauge
	duration  prometheus.Histogram
	reportAPI *prometheus.GaugeVec
	diagnosis *prometheus.GaugeVec
}

// NewMetrics creates the audit's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiservice_guard_audit_findings",
			Help: "Findings of the audit on existing objects, by rule and action, as of the latest review of each object.",
		}, []string{"rule", "action"}),
		available: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiservice_guard_apiservice_available",
			Help: "1 when the aggregator's Available condition of an APIService backed by a Service is True, else 0.",
		}, []string{"apiservice"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiservice_guard_audit_last_run_timestamp_seconds",
			Help: "When the latest full audit scan ended (Unix time).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apiservice_guard_audit_scan_duration_seconds",
			Help:    "Wall time of a full audit scan.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 9),
		}),
		diagnosis: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiservice_guard_apiservice_diagnosis",
			Help: "1 for the cause the diagnosis names for an APIService unavailable for 30s or more (cause: service-missing, no-endpoints, a rule's name, connection-refused, timeout, forbidden, not-served, unknown).",
		}, []string{"apiservice", "cause"}),
		reportAPI: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiservice_guard_audit_report_api",
			Help: "1 for the report API the audit writes: openreports, wgpolicyk8s, or none when no report CRD is installed.",
		}, []string{"api"}),
	}
	var err error
	if m.findings, err = promreg.Register(reg, m.findings); err != nil {
		return nil, err
	}
	if m.available, err = promreg.Register(reg, m.available); err != nil {
		return nil, err
	}
	if m.lastRun, err = promreg.Register(reg, m.lastRun); err != nil {
		return nil, err
	}
	if m.duration, err = promreg.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.reportAPI, err = promreg.Register(reg, m.reportAPI); err != nil {
		return nil, err
	}
	if m.diagnosis, err = promreg.Register(reg, m.diagnosis); err != nil {
		return nil, err
	}
	return m, nil
}

// setAvailable records api's Available condition.
func (m *Metrics) setAvailable(api *apiregv1.APIService) {
	if m == nil || api.Spec.Service == nil {
		return
	}
	v := 0.0
	if Available(api) {
		v = 1
	}
	m.available.WithLabelValues(api.Name).Set(v)
}
