// Package bench holds the benchmarks whose results are recorded in
// docs/benchmarks.md. They run against a real kube-apiserver (envtest) when
// the benchmark needs a live cluster view; run them with `make bench`.
package bench
