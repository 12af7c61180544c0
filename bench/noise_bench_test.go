package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMachineNoise times pure computation of a fixed length (no
// allocation, no system call, no shared state) exactly as measure times a
// review. Its p99 is the machine's own tail for work of that length: what
// interrupts a running thread (timer ticks, the hypervisor, other
// processes), which no code change removes. docs/benchmarks.md reads the
// in-process percentiles against it.
func BenchmarkMachineNoise(b *testing.B) {
	for _, d := range []time.Duration{5 * time.Microsecond, 10 * time.Microsecond, 20 * time.Microsecond, 100 * time.Microsecond} {
		n := spinsFor(d)
		b.Run(fmt.Sprintf("work=%s", d), func(b *testing.B) {
			percentiles(b, func() { spin(n) })
		})
	}
}

var spinSink uint64

// spin runs n steps of a linear congruential generator.
func spin(n int) {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	spinSink += x
}

// spinsFor calibrates how many steps take about d: the fastest of a few runs.
func spinsFor(d time.Duration) int {
	const probe = 1 << 20
	best := time.Duration(1 << 62)
	for range 5 {
		start := time.Now()
		spin(probe)
		best = min(best, time.Since(start))
	}
	return int(float64(probe) * float64(d) / float64(best))
}
