// Package install tests the guard as installed without cert-manager: its
// own CA and serving certificate (serve --cert-mode=self-managed), the
// caBundle it keeps in its webhook configurations against other writers,
// rotations and a deleted Secret under load with failurePolicy Fail, and
// several replicas behind one Service. It runs its own control plane
// (kube-apiserver + etcd, from hack/tools.sh) with the webhook
// configurations of manifests/base reached through a ClusterIP Service, as
// in a cluster; the tests are in _test.go files.
package install
