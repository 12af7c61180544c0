package webhook_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// TestRepeatedFindingIsOneEvent: the same finding on the same object
// within seconds (a controller re-applying it) is one Event; another object
// gets its own.
func TestRepeatedFindingIsOneEvent(t *testing.T) {
	engine, view := enforcing(t)
	rec := events.NewFakeRecorder(100)
	v := webhook.NewValidator(webhook.Options{Engine: engine, View: view, Recorder: rec})
	review := func(name string) {
		t.Helper()
		api := fmt.Sprintf(`{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":%q},`+
			`"spec":{"group":"x.example.com","version":"v1","groupPriorityMinimum":100,"versionPriority":100,"insecureSkipTLSVerify":true,`+
			`"service":{"namespace":"x","name":"x","port":443}}}`, name)
		resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Name: name, Operation: admissionv1.Create,
			Kind:     metav1.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"},
			Resource: metav1.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
			Object:   runtime.RawExtension{Raw: []byte(api)},
		}})
		if len(resp.Warnings) == 0 {
			t.Fatalf("no warning for %s: %+v", name, resp)
		}
	}
	count := func() int {
		n := 0
		for {
			select {
			case <-rec.Events:
				n++
			default:
				return n
			}
		}
	}
	review("v1.x.example.com")
	first := count()
	if first == 0 {
		t.Fatal("the first review emitted no Event")
	}
	for range 5 {
		review("v1.x.example.com")
	}
	if n := count(); n != 0 {
		t.Errorf("5 repeats emitted %d more Events, want none", n)
	}
	review("v2.x.example.com")
	if n := count(); n != first {
		t.Errorf("another object emitted %d Events, want %d", n, first)
	}
}

// enforcing is an engine of the default rules in enforce mode and a static
// view of objs: the setup of most handler tests.
func enforcing(t testing.TB, objs ...runtime.Object) (*policies.Engine, *cluster.Static) {
	t.Helper()
	view, err := cluster.NewStatic(objs...)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return engine, view
}

// kedaAPIService is KEDA's external-metrics APIService, for a view in
// which the keda namespace holds a backend.
func kedaAPIService() *apiregv1.APIService {
	port := int32(443)
	return &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.external.metrics.k8s.io"},
		Spec: apiregv1.APIServiceSpec{Group: "external.metrics.k8s.io", Version: "v1beta1",
			Service: &apiregv1.ServiceReference{Namespace: "keda", Name: "keda-operator-metrics-apiserver", Port: &port}},
	}
}

// TestRepeatedWarningIsOneLogLine: a warning repeated on the same object
// within seconds is logged once per user (and counted every time); a
// denial is logged every time.
func TestRepeatedWarningIsOneLogLine(t *testing.T) {
	rule := func(name string, action policies.Action) policies.Rule {
		return policies.Rule{Name: name, Default: action, Summary: name, Kinds: []schema.GroupKind{policies.ConfigMapKind},
			Check: func(context.Context, *policies.Review, cluster.View) []policies.Result {
				return []policies.Result{{Message: "it happened", Fix: "undo it"}}
			}}
	}
	v := webhook.NewValidator(emptyCluster(t, rule("warns", policies.Warn), rule("denies", policies.Enforce)))
	logged := map[string]int{}
	ctx := log.IntoContext(context.Background(), funcr.New(func(_, args string) {
		for _, r := range []string{"warns", "denies"} {
			if strings.Contains(args, `"policy finding"`) && strings.Contains(args, `"rule"="`+r+`"`) {
				logged[r]++
			}
		}
	}, funcr.Options{}))
	review := func(user string) {
		t.Helper()
		resp := v.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Namespace: "kube-system", Name: "worker-config-default-1.37", Operation: admissionv1.Create,
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			UserInfo: authenticationv1.UserInfo{Username: user},
			Object:   runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"worker-config-default-1.37","namespace":"kube-system"}}`)},
		}})
		if resp.Allowed || len(resp.Warnings) != 1 {
			t.Fatalf("want a denial and a warning: %+v", resp)
		}
	}
	for range 5 {
		review("argocd")
	}
	review("alice")
	if logged["denies"] != 6 || logged["warns"] != 2 {
		t.Errorf("logged %v; want the denial 6 times and the warning once per user, 2", logged)
	}
}
