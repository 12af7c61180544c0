package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// create creates objects and deletes them when the test ends.
func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := suite.client.Create(t.Context(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		obj := o
		t.Cleanup(func() {
			_ = suite.client.Delete(context.Background(), obj)
		})
	}
}

// availableCondition returns the APIService's Available condition.
func availableCondition(ctx context.Context, name string) (apiregv1.APIServiceCondition, error) {
	var api apiregv1.APIService
	if err := suite.client.Get(ctx, client.ObjectKey{Name: name}, &api); err != nil {
		return apiregv1.APIServiceCondition{}, err
	}
	for _, c := range api.Status.Conditions {
		if c.Type == apiregv1.Available {
			return c, nil
		}
	}
	return apiregv1.APIServiceCondition{}, nil
}

// waitAvailable waits until the aggregator reports the APIService's
// Available condition with status want (and, when reason is not empty, that
// reason and a message containing msg). It returns the condition seen.
func waitAvailable(t *testing.T, name string, want apiregv1.ConditionStatus, reason, msg string) apiregv1.APIServiceCondition {
	t.Helper()
	var last apiregv1.APIServiceCondition
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := availableCondition(ctx, name)
		if err != nil {
			return false, err
		}
		last = c
		return c.Status == want && (reason == "" || c.Reason == reason) && strings.Contains(c.Message, msg), nil
	})
	if err != nil {
		t.Fatalf("APIService %s: want Available=%s %s %q, last seen %s", name, want, reason, msg, describe(last))
	}
	return last
}

func describe(c apiregv1.APIServiceCondition) string {
	return fmt.Sprintf("Available=%s (%s) %q", c.Status, c.Reason, c.Message)
}
