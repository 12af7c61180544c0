package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRatioInterval: the bootstrap interval of a ratio of percentiles holds
// the ratio of the distributions the samples come from, and is narrow
// where many samples lie (p50) and wide where few do (p99).
func TestRatioInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sample := func(scale float64) []time.Duration {
		d := make([]time.Duration, 1000)
		for i := range d {
			// Exponential tail above a floor, like write latencies.
			d[i] = time.Duration(scale * float64(time.Millisecond) * (3 + rng.ExpFloat64()))
		}
		return d
	}
	same, other := sample(1), sample(1)
	for _, q := range []int{50, 99} {
		if lo, hi := ratioInterval(same, other, q); lo > 1 || hi < 1 {
			t.Errorf("p%d of one distribution: interval %.2f–%.2f leaves out 1", q, lo, hi)
		}
		if lo, hi := ratioInterval(sample(2), other, q); lo > 2 || hi < 2 || lo < 1.5 {
			t.Errorf("p%d of twice the distribution: interval %.2f–%.2f", q, lo, hi)
		}
	}
	lo50, hi50 := ratioInterval(same, other, 50)
	lo99, hi99 := ratioInterval(same, other, 99)
	if hi99-lo99 <= hi50-lo50 {
		t.Errorf("p99's interval %.2f–%.2f is not wider than p50's %.2f–%.2f", lo99, hi99, lo50, hi50)
	}
}
