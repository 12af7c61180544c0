package cluster

import (
	"sync"

	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"apiservice-guard.io/apiservice-guard/k0s"
)

// NewScheme returns a scheme with every type the guard reads: the built-in
// Kubernetes API, APIService, cert-manager's Certificate, k0s's
// ClusterConfig, the cluster-scoped policies and Cilium's policies.
//
// Clients built on it read APIServices and CustomResourceDefinitions in
// protobuf, as they read the built-in kinds (see protobufOnce).
func NewScheme() *runtime.Scheme {
	protobufOnce.Do(func() {
		utilruntime.Must(apiutil.AddToProtobufScheme(apiregv1.AddToScheme))
		utilruntime.Must(apiutil.AddToProtobufScheme(apiextensionsv1.AddToScheme))
	})
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiregv1.AddToScheme(s))
	utilruntime.Must(cmapi.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(k0s.AddToScheme(s))
	utilruntime.Must(cnpv1beta1.Install(s))
	utilruntime.Must(cnpv1alpha2.Install(s))
	utilruntime.Must(anpv1alpha1.Install(s))
	utilruntime.Must(addCilium(s))
	return s
}

// protobufOnce tells controller-runtime, once per process, that the API
// server serves APIServices and CustomResourceDefinitions in protobuf. It
// asks for protobuf only for client-go's own kinds unless told: the guard's
// informers decoded every APIService watch event from JSON, several times
// the CPU of a protobuf decode.
var protobufOnce sync.Once
