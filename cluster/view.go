package cluster

import (
	"context"
	"crypto/x509"
	"errors"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// ErrNotAvailable is returned (wrapped) by a View that cannot answer a question
// at all, as opposed to answering "not found": for example a TLS probe asked of
// a Static view, or a cert-manager Certificate when the CRD is not installed.
// Rules treat it as "cannot verify" rather than as a violation.
var ErrNotAvailable = errors.New("not available in this view")

// View answers the questions rules ask about the cluster. Getters return an
// error satisfying apierrors.IsNotFound when the object does not exist. Returned
// objects are shared with the view's cache and must not be modified.
type View interface {
	// Namespace returns the named Namespace.
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	// Service returns the named Service.
	Service(ctx context.Context, namespace, name string) (*corev1.Service, error)
	// EndpointSlices returns the EndpointSlices of a Service (label
	// kubernetes.io/service-name).
	EndpointSlices(ctx context.Context, namespace, service string) ([]*discoveryv1.EndpointSlice, error)
	// Pods returns the pods in namespace matching selector, in an order that
	// does not change while the pods do not; an empty namespace
	// means every namespace.
	Pods(ctx context.Context, namespace string, selector labels.Selector) ([]*corev1.Pod, error)
	// Nodes returns every Node.
	Nodes(ctx context.Context) ([]*corev1.Node, error)
	// NetworkPolicies returns the NetworkPolicies of a namespace.
	NetworkPolicies(ctx context.Context, namespace string) ([]*networkingv1.NetworkPolicy, error)
	// ClusterNetworkPolicies returns the cluster-scoped policies of
	// policy.networking.k8s.io (ClusterNetworkPolicies of either version,
	// AdminNetworkPolicies and BaselineAdminNetworkPolicies), all as v1beta1
	// ClusterNetworkPolicies; none when the cluster serves none.
	ClusterNetworkPolicies(ctx context.Context) ([]*cnpv1beta1.ClusterNetworkPolicy, error)
	// CiliumPolicies returns the CiliumNetworkPolicies and
	// CiliumClusterwideNetworkPolicies (Namespace empty); none when the
	// cluster serves neither.
	CiliumPolicies(ctx context.Context) ([]*netpol.CiliumPolicy, error)
	// APIService returns the named APIService.
	APIService(ctx context.Context, name string) (*apiregv1.APIService, error)
	// ServiceReferences returns the Services the API server calls out to, in
	// namespace (every namespace when empty): those of APIServices, of
	// validating and mutating webhooks, and of CRD conversion webhooks, in
	// that order of kinds.
	ServiceReferences(ctx context.Context, namespace string) ([]ServiceReference, error)
	// RoleBindings returns the RoleBindings of a namespace whose roleRef
	// names roleName; an empty roleName means all of them.
	RoleBindings(ctx context.Context, namespace, roleName string) ([]*rbacv1.RoleBinding, error)
	// ClusterRoleBindings returns the ClusterRoleBindings whose roleRef names
	// roleName; an empty roleName means all of them.
	ClusterRoleBindings(ctx context.Context, roleName string) ([]*rbacv1.ClusterRoleBinding, error)
	// Secret returns the named Secret. Secrets are read by name only.
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// Certificate returns the named cert-manager Certificate.
	Certificate(ctx context.Context, namespace, name string) (*cmapi.Certificate, error)
	// ServingCertificate returns the certificate chain presented by the TLS
	// server at address ("host:port") for serverName, leaf first. Views that
	// cannot connect return ErrNotAvailable.
	ServingCertificate(ctx context.Context, address, serverName string) ([]*x509.Certificate, error)
}
