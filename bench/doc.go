// Package bench holds the benchmarks whose results are recorded in
// docs/benchmarks.md. They run against a real kube-apiserver (envtest) when
// the benchmark needs a live cluster view; BenchmarkInstalled and
// BenchmarkAgainstNoOp run the guard process as installed from manifests/
// (harness.Installation). Run them with `make bench`.
package bench
