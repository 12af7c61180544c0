package webhook_test

import (
	"context"
	"fmt"
	"testing"

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
