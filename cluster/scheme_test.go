package cluster_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// The guard's clients ask for APIServices and CRDs in protobuf, as for the
// built-in kinds: what a watch of them costs to decode. A loopback server
// records the Accept header of each read.
func TestClientsReadAPIServicesAndCRDsInProtobuf(t *testing.T) {
	accepts := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepts[r.URL.Path] = r.Header.Get("Accept")
		http.Error(w, "not here", http.StatusNotFound)
	}))
	defer srv.Close()
	scheme := cluster.NewScheme()
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, o := range []client.Object{&apiregv1.APIService{}, &apiextensionsv1.CustomResourceDefinition{}, &networkingv1.NetworkPolicy{}} {
		gvks, _, err := scheme.ObjectKinds(o)
		if err != nil {
			t.Fatal(err)
		}
		scope := meta.RESTScopeRoot
		if _, ok := o.(*networkingv1.NetworkPolicy); ok {
			scope = meta.RESTScopeNamespace
		}
		mapper.Add(gvks[0], scope)
	}
	c, err := client.New(&rest.Config{Host: srv.URL}, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	for path, o := range map[string]client.Object{
		"/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.example.io":            &apiregv1.APIService{},
		"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.io": &apiextensionsv1.CustomResourceDefinition{},
		"/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/p":                &networkingv1.NetworkPolicy{},
	} {
		parts := strings.Split(path, "/")
		key := client.ObjectKey{Name: parts[len(parts)-1]}
		if strings.Contains(path, "/namespaces/") {
			key.Namespace = parts[len(parts)-3]
		}
		if err := c.Get(t.Context(), key, o); err == nil {
			t.Fatalf("%s: read from a server that has nothing", path)
		}
		got, ok := accepts[path]
		if !ok {
			t.Fatalf("%s: not requested; requests: %v", path, accepts)
		}
		if !strings.HasPrefix(got, "application/vnd.kubernetes.protobuf") {
			t.Errorf("%s: Accept %q, want protobuf first", path, got)
		}
	}
}
