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
	reads := []struct {
		obj   client.Object
		key   client.ObjectKey
		scope meta.RESTScope
		path  string
	}{
		{&apiregv1.APIService{}, client.ObjectKey{Name: "v1beta1.example.io"}, meta.RESTScopeRoot,
			"/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.example.io"},
		{&apiextensionsv1.CustomResourceDefinition{}, client.ObjectKey{Name: "things.example.io"}, meta.RESTScopeRoot,
			"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.io"},
		{&networkingv1.NetworkPolicy{}, client.ObjectKey{Namespace: "ns", Name: "p"}, meta.RESTScopeNamespace,
			"/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/p"},
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, r := range reads {
		gvks, _, err := scheme.ObjectKinds(r.obj)
		if err != nil {
			t.Fatal(err)
		}
		mapper.Add(gvks[0], r.scope)
	}
	c, err := client.New(&rest.Config{Host: srv.URL}, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		if err := c.Get(t.Context(), r.key, r.obj); err == nil {
			t.Fatalf("%s: read from a server that has nothing", r.path)
		}
		got, ok := accepts[r.path]
		if !ok {
			t.Fatalf("%s: not requested; requests: %v", r.path, accepts)
		}
		if !strings.HasPrefix(got, "application/vnd.kubernetes.protobuf") {
			t.Errorf("%s: Accept %q, want protobuf first", r.path, got)
		}
	}
}
