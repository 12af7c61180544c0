package harness

import (
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counter scrapes http://addr/metrics and sums the counter name over the
// series whose labels include every one of labels.
func Counter(addr, name string, labels map[string]string) (float64, error) {
	families, err := ScrapeMetrics("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	total, _ := Total(families, name, labels)
	return total, nil
}

// ScrapeMetrics gets and parses the Prometheus metrics at url. It asks for
// them uncompressed: benchmarks scrape a process whose CPU they measure,
// and gzip is the larger part of what a scrape costs it.
func ScrapeMetrics(url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: HTTP %s", url, resp.Status)
	}
	families, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return families, nil
}

// ParseMetrics parses a Prometheus text exposition.
func ParseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return families, nil
}

// Total sums the metric name over the series whose labels include every
// one of labels: a counter's values, or a histogram's or summary's sums
// with its observation count.
func Total(families map[string]*dto.MetricFamily, name string, labels map[string]string) (value, count float64) {
series:
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue series
			}
		}
		if h := m.GetHistogram(); h != nil {
			value += h.GetSampleSum()
			count += float64(h.GetSampleCount())
			continue
		}
		if s := m.GetSummary(); s != nil {
			value += s.GetSampleSum()
			count += float64(s.GetSampleCount())
			continue
		}
		value += m.GetCounter().GetValue()
		count++
	}
	return value, count
}
