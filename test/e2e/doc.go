// Package e2e tests apiservice-guard end to end: a real kube-apiserver and
// etcd (controller-runtime envtest, binaries built by hack/tools.sh), the
// webhook configurations from manifests/, the guard binary as a subprocess,
// kubectl, and test adapters on 127.0.0.1 behind ExternalName Services so the
// real aggregator checks discovery and TLS.
package e2e
