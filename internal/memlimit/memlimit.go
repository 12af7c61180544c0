// Package memlimit sets the Go runtime's soft memory limit from the
// container's: the garbage collector then works harder as the heap nears
// the limit, instead of the kernel killing the process at it.
package memlimit

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// EnvLimit names the variable through which the manifests pass the
// container's memory limit in bytes (a resourceFieldRef of limits.memory).
const EnvLimit = "APISERVICE_GUARD_MEMORY_LIMIT"

// Fraction of the container's limit that becomes the soft limit: room for
// what the Go runtime does not count (stacks in flight, the binary).
const Fraction = 0.9

// Set sets the soft limit to Fraction of the container's memory limit: the
// one EnvLimit gives, else the cgroup's (v2 memory.max, else v1
// memory.limit_in_bytes, under cgroupRoot). GOMEMLIMIT, when set, wins:
// the runtime has read it, and Set leaves it. It returns the limit set, 0
// when none is known, and why.
func Set(cgroupRoot string) (int64, string) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT=" + v
	}
	limit, from := containerLimit(cgroupRoot)
	if limit <= 0 {
		return 0, "no container memory limit found"
	}
	soft := int64(float64(limit) * Fraction)
	debug.SetMemoryLimit(soft)
	return soft, fmt.Sprintf("%.0f%% of %d bytes (%s)", Fraction*100, limit, from)
}

// containerLimit is the container's memory limit in bytes, 0 when none.
func containerLimit(cgroupRoot string) (int64, string) {
	if v := os.Getenv(EnvLimit); v != "" {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			return n, EnvLimit
		}
	}
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		data, err := os.ReadFile(filepath.Join(cgroupRoot, f))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		// "max" (v2) or a page-rounded int64 maximum (v1) mean no limit.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0, ""
		}
		return n, f
	}
	return 0, ""
}
