// Package cluster is the read-only view of cluster state that policy rules
// consult. It has two implementations: Live, backed by a controller-runtime
// informer cache of a running cluster, and Static, built from YAML manifests on
// disk for offline checks. Rules see only the View interface and never a client.
package cluster
