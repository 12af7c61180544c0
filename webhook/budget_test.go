package webhook_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// expensiveConfigMap is a k0s worker-config-like ConfigMap of about 900 KiB
// (an API-valid size) whose thousands of values are each a small YAML alias
// bomb: every one is parsed and refused, which takes seconds in all.
func expensiveConfigMap() []byte {
	bomb := func(key int) string {
		lines := []string{`a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]`}
		for i := 1; i < 4; i++ {
			refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ",")
			lines = append(lines, fmt.Sprintf("a%d: &a%d [%s]", i, i, refs))
		}
		return strings.Join(append(lines, fmt.Sprintf("kind: ClusterConfig # k0s.k0sproject.io/v1beta1 %d", key)), `\n`)
	}
	var data []string
	for k, n := 0, 0; n < 900<<10; k++ {
		d := fmt.Sprintf(`"k%d.yaml":"%s"`, k, bomb(k))
		data, n = append(data, d), n+len(d)+1
	}
	return k0sRequest("{"+strings.Join(data, ",")+"}", "")
}

// TestReviewBudget: a review that runs out of its time budget (here a rule
// stuck for 3 s, as a rule meeting an input no input budget foresaw would
// be) answers in time, allowed with a warning that says it was not judged
// (never a silent allow, never a hang), and the server answers a good
// review afterwards.
func TestReviewBudget(t *testing.T) {
	const timeout = 300 * time.Millisecond
	stuck := policies.Rule{Name: "stuck", Default: policies.Enforce, Summary: "takes 3 s",
		Kinds: []schema.GroupKind{policies.ConfigMapKind},
		Check: func(context.Context, *policies.Review, cluster.View) []policies.Result {
			time.Sleep(3 * time.Second)
			return nil
		}}
	o := emptyCluster(t, stuck)
	o.ReviewTimeout = timeout
	srv := httptest.NewTLSServer(webhook.Handler(webhook.NewValidator(o)))
	t.Cleanup(srv.Close)
	body := k0sRequest(`{"konnectivity":"{\"enabled\":true,\"agentPort\":8132}"}`, "")
	for i := range 3 {
		start := time.Now()
		code, resp := post(t, srv, "application/json", body)
		took := time.Since(start)
		// The early answer is to this request: the API server drops an
		// answer of another UID.
		if code != 200 || !resp.Allowed || resp.UID != "u2" || len(resp.Warnings) != 1 ||
			!strings.Contains(resp.Warnings[0], "[review-budget] ConfigMap kube-system/worker-config-default-1.37 not judged") {
			t.Fatalf("review %d: HTTP %d uid=%q allowed=%v warnings=%q result=%+v", i, code, resp.UID, resp.Allowed, resp.Warnings, resp.Result)
		}
		if took > timeout+2*time.Second {
			t.Errorf("review %d answered in %s, budget %s", i, took, timeout)
		}
	}
	ca, err := certs.NewCA("budget", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, resp := post(t, srv, "application/json", apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString(ca.CertPEM()), 1)))
	if !resp.Allowed || resp.UID != "u1" {
		t.Fatalf("a good review after the stuck ones: %+v", resp)
	}
}

// TestReviewBudgetFollowsTheAPIServer: without a fixed timeout, a review's
// budget is 80% of the timeout the API server names in its call (the
// webhook's timeoutSeconds, as ?timeout=), and 4 s when it names none or
// one no API server sends.
func TestReviewBudgetFollowsTheAPIServer(t *testing.T) {
	stuck := policies.Rule{Name: "stuck", Default: policies.Enforce, Summary: "takes 10 s",
		Kinds: []schema.GroupKind{policies.ConfigMapKind},
		Check: func(ctx context.Context, _ *policies.Review, _ cluster.View) []policies.Result {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
			return nil
		}}
	srv := httptest.NewTLSServer(webhook.Handler(webhook.NewValidator(emptyCluster(t, stuck))))
	t.Cleanup(srv.Close)
	body := k0sRequest(`{"konnectivity":"{\"enabled\":true,\"agentPort\":8132}"}`, "")
	for _, c := range []struct {
		query  string
		budget time.Duration
	}{
		{"?timeout=1s", 800 * time.Millisecond},
		{"?timeout=2s", 1600 * time.Millisecond},
		{"?timeout=garbage", webhook.DefaultReviewTimeout},
		{"?timeout=1h", webhook.DefaultReviewTimeout},
		{"", webhook.DefaultReviewTimeout},
	} {
		t.Run(c.query, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			code, resp := postTo(t, srv, webhook.ValidatePath+c.query, "application/json", body)
			took := time.Since(start)
			want := fmt.Sprintf("within its %s budget", c.budget)
			if code != 200 || !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], want) {
				t.Fatalf("HTTP %d allowed=%v warnings=%q, want one naming %q", code, resp.Allowed, resp.Warnings, want)
			}
			if took < c.budget || took > c.budget+time.Second {
				t.Errorf("answered in %s, budget %s", took, c.budget)
			}
		})
	}
}
