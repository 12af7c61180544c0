// Package k0s reads the k0s configuration that decides whether the API
// server can reach the pod network: ClusterConfig documents (a k0s.yaml, a
// ConfigMap value, the dynamic-config object "k0s" in kube-system) and the
// konnectivity entry of worker-config ConfigMaps. It parses with typed structs
// covering only the fields the guard's rules read, tolerates every other
// field, and reports wrong types and invalid values with their field path.
package k0s
