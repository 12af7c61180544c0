package k0s_test

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"apiservice-guard.io/apiservice-guard/k0s"
)

func ptr[T any](v T) *T { return &v }

// defaults is what k0s runs with when the spec sets nothing.
var defaults = k0s.Effective{
	APIPort:     6443,
	Provider:    "kuberouter",
	PodCIDR:     "10.244.0.0/16",
	ServiceCIDR: "10.96.0.0/12",
	AgentPort:   8132,
	AdminPort:   8133,
}

func TestEffective(t *testing.T) {
	tests := []struct {
		name string
		in   *k0s.Spec
		want k0s.Effective
	}{
		{name: "nil spec", in: nil, want: defaults},
		{name: "empty spec", in: &k0s.Spec{}, want: defaults},
		{name: "empty sections", in: &k0s.Spec{API: &k0s.API{}, Network: &k0s.Network{Calico: &k0s.Calico{}}, Konnectivity: &k0s.Konnectivity{}}, want: defaults},
		{
			name: "calico without mode defaults to vxlan",
			in:   &k0s.Spec{Network: &k0s.Network{Provider: ptr("calico")}},
			want: func() k0s.Effective { e := defaults; e.Provider, e.CalicoMode = "calico", "vxlan"; return e }(),
		},
		{
			name: "calico with an empty calico section defaults to vxlan",
			in:   &k0s.Spec{Network: &k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{}}},
			want: func() k0s.Effective { e := defaults; e.Provider, e.CalicoMode = "calico", "vxlan"; return e }(),
		},
		{
			name: "calico mode set",
			in:   &k0s.Spec{Network: &k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("bird")}}},
			want: func() k0s.Effective { e := defaults; e.Provider, e.CalicoMode = "calico", "bird"; return e }(),
		},
		{
			name: "no calico mode default for custom",
			in:   &k0s.Spec{Network: &k0s.Network{Provider: ptr("custom")}},
			want: func() k0s.Effective { e := defaults; e.Provider = "custom"; return e }(),
		},
		{
			name: "no calico mode default for kuberouter with a calico section",
			in:   &k0s.Spec{Network: &k0s.Network{Calico: &k0s.Calico{IPAutodetectionMethod: ptr("interface=eth1")}}},
			want: func() k0s.Effective { e := defaults; e.CalicoIPAutodetectionMethod = "interface=eth1"; return e }(),
		},
		{
			name: "every field set",
			in: &k0s.Spec{
				API: &k0s.API{Port: ptr(7443)},
				Network: &k0s.Network{
					Provider:    ptr("calico"),
					PodCIDR:     ptr("10.32.0.0/12"),
					ServiceCIDR: ptr("10.128.0.0/16"),
					Calico:      &k0s.Calico{Mode: ptr("ipip"), IPAutodetectionMethod: ptr("can-reach=10.0.0.1")},
				},
				Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9132), AdminPort: ptr(9133)},
			},
			want: k0s.Effective{
				APIPort:                     7443,
				Provider:                    "calico",
				PodCIDR:                     "10.32.0.0/12",
				ServiceCIDR:                 "10.128.0.0/16",
				CalicoMode:                  "ipip",
				CalicoIPAutodetectionMethod: "can-reach=10.0.0.1",
				AgentPort:                   9132,
				AdminPort:                   9133,
			},
		},
		{
			name: "values set to zero are kept, not defaulted",
			in: &k0s.Spec{
				API:          &k0s.API{Port: ptr(0)},
				Network:      &k0s.Network{Provider: ptr(""), PodCIDR: ptr("")},
				Konnectivity: &k0s.Konnectivity{AgentPort: ptr(0)},
			},
			want: func() k0s.Effective {
				e := defaults
				e.APIPort, e.Provider, e.PodCIDR, e.AgentPort = 0, "", "", 0
				return e
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.Effective()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Effective() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultConstants(t *testing.T) {
	got := k0s.Effective{
		APIPort: k0s.DefaultAPIPort, Provider: k0s.DefaultProvider, PodCIDR: k0s.DefaultPodCIDR,
		ServiceCIDR: k0s.DefaultServiceCIDR, AgentPort: k0s.DefaultAgentPort, AdminPort: k0s.DefaultAdminPort,
	}
	if diff := cmp.Diff(defaults, got); diff != "" {
		t.Errorf("default constants mismatch (-want +got):\n%s", diff)
	}
	if k0s.DefaultCalicoMode != "vxlan" {
		t.Errorf("DefaultCalicoMode = %q, want vxlan", k0s.DefaultCalicoMode)
	}
}

// fieldErr is what a test compares of a *field.Error: its type and path,
// and a substring of its detail when given.
type fieldErr struct {
	Type   field.ErrorType
	Field  string
	Detail string
}

func checkErrors(t *testing.T, want []fieldErr, got field.ErrorList) {
	t.Helper()
	gotPairs := make([]fieldErr, len(got))
	for i, e := range got {
		gotPairs[i] = fieldErr{Type: e.Type, Field: e.Field}
	}
	wantPairs := make([]fieldErr, len(want))
	for i, w := range want {
		wantPairs[i] = fieldErr{Type: w.Type, Field: w.Field}
	}
	if diff := cmp.Diff(wantPairs, gotPairs); diff != "" {
		t.Fatalf("errors mismatch (-want +got):\n%s\ngot: %v", diff, got)
	}
	for i, w := range want {
		if !strings.Contains(got[i].Detail, w.Detail) {
			t.Errorf("error %d detail = %q, want it to contain %q", i, got[i].Detail, w.Detail)
		}
	}
}

func TestValidate(t *testing.T) {
	network := func(n k0s.Network) *k0s.Spec { return &k0s.Spec{Network: &n} }
	kon := func(agent, admin int) *k0s.Spec {
		return &k0s.Spec{Konnectivity: &k0s.Konnectivity{AgentPort: ptr(agent), AdminPort: ptr(admin)}}
	}
	withAPI := func(port int, s *k0s.Spec) *k0s.Spec { s.API = &k0s.API{Port: ptr(port)}; return s }
	const (
		notSupported = field.ErrorTypeNotSupported
		invalid      = field.ErrorTypeInvalid
		required     = field.ErrorTypeRequired
		duplicate    = field.ErrorTypeDuplicate
	)
	const (
		apiCollision     = "collides with the Kubernetes API server port (spec.api.port)"
		kubeletCollision = "collides with the kubelet port 10250"
		outOfRange       = "must be between 1 and 65535, inclusive"
	)
	tests := []struct {
		name string
		in   *k0s.Spec
		want []fieldErr
	}{
		{name: "nil spec", in: nil},
		{name: "default spec", in: &k0s.Spec{}},
		{name: "every provider k0s supports: kuberouter", in: network(k0s.Network{Provider: ptr("kuberouter")})},
		{name: "every provider k0s supports: calico", in: network(k0s.Network{Provider: ptr("calico")})},
		{name: "every provider k0s supports: custom", in: network(k0s.Network{Provider: ptr("custom")})},
		{
			name: "flannel",
			in:   network(k0s.Network{Provider: ptr("flannel")}),
			want: []fieldErr{{notSupported, "spec.network.provider", `"calico"`}},
		},
		{
			name: "empty provider",
			in:   network(k0s.Network{Provider: ptr("")}),
			want: []fieldErr{{notSupported, "spec.network.provider", `"kuberouter"`}},
		},
		{
			name: "provider names are case-sensitive",
			in:   network(k0s.Network{Provider: ptr("Calico")}),
			want: []fieldErr{{notSupported, "spec.network.provider", ""}},
		},
		{
			name: "podCIDR prefix too long",
			in:   network(k0s.Network{PodCIDR: ptr("10.0.0.0/33")}),
			want: []fieldErr{{invalid, "spec.network.podCIDR", "invalid CIDR address"}},
		},
		{
			name: "podCIDR garbage",
			in:   network(k0s.Network{PodCIDR: ptr("garbage")}),
			want: []fieldErr{{invalid, "spec.network.podCIDR", "invalid CIDR address"}},
		},
		{
			name: "podCIDR empty",
			in:   network(k0s.Network{PodCIDR: ptr("")}),
			want: []fieldErr{{invalid, "spec.network.podCIDR", "invalid CIDR address"}},
		},
		{
			name: "podCIDR without prefix length",
			in:   network(k0s.Network{PodCIDR: ptr("10.244.0.0")}),
			want: []fieldErr{{invalid, "spec.network.podCIDR", "invalid CIDR address"}},
		},
		{
			name: "serviceCIDR prefix too long",
			in:   network(k0s.Network{ServiceCIDR: ptr("10.0.0.0/33")}),
			want: []fieldErr{{invalid, "spec.network.serviceCIDR", "invalid CIDR address"}},
		},
		{
			name: "serviceCIDR garbage",
			in:   network(k0s.Network{ServiceCIDR: ptr("garbage")}),
			want: []fieldErr{{invalid, "spec.network.serviceCIDR", "invalid CIDR address"}},
		},
		{
			name: "serviceCIDR empty",
			in:   network(k0s.Network{ServiceCIDR: ptr("")}),
			want: []fieldErr{{invalid, "spec.network.serviceCIDR", "invalid CIDR address"}},
		},
		{name: "host bits set are accepted, as net.ParseCIDR does", in: network(k0s.Network{PodCIDR: ptr("10.244.1.0/16"), ServiceCIDR: ptr("10.96.0.1/12")})},
		{name: "IPv6 CIDRs", in: network(k0s.Network{PodCIDR: ptr("fd00::/108"), ServiceCIDR: ptr("fd01::/108")})},
		{name: "calico modes: bird", in: network(k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("bird")}})},
		{name: "calico modes: vxlan", in: network(k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("vxlan")}})},
		{name: "calico modes: ipip", in: network(k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("ipip")}})},
		{
			name: "calico mode foo",
			in:   network(k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("foo")}}),
			want: []fieldErr{{notSupported, "spec.network.calico.mode", `"bird"`}},
		},
		{
			name: "several network errors, in field order",
			in:   network(k0s.Network{Provider: ptr("flannel"), PodCIDR: ptr("garbage"), ServiceCIDR: ptr("10.0.0.0/33"), Calico: &k0s.Calico{Mode: ptr("foo")}}),
			want: []fieldErr{
				{notSupported, "spec.network.provider", ""},
				{invalid, "spec.network.podCIDR", ""},
				{invalid, "spec.network.serviceCIDR", ""},
				// no calico.mode error: k0s drops the calico section unless
				// calico is the provider
			},
		},
		{
			name: "calico mode given empty",
			in:   network(k0s.Network{Provider: ptr("calico"), Calico: &k0s.Calico{Mode: ptr("")}}),
			want: []fieldErr{{required, "spec.network.calico.mode", ""}},
		},
		{name: "konnectivity ports moved", in: kon(9132, 9133)},
		{name: "konnectivity ports swapped", in: kon(8133, 8132)},
		{name: "konnectivity ports at the bounds", in: kon(1, 65535)},
		{
			name: "agentPort equal to adminPort",
			in:   kon(9000, 9000),
			want: []fieldErr{{duplicate, "spec.konnectivity.adminPort", "equal to spec.konnectivity.agentPort; konnectivity-server needs two ports"}},
		},
		{
			name: "adminPort set to the default agentPort",
			in:   &k0s.Spec{Konnectivity: &k0s.Konnectivity{AdminPort: ptr(8132)}},
			want: []fieldErr{{duplicate, "spec.konnectivity.adminPort", "equal to spec.konnectivity.agentPort"}},
		},
		{
			name: "agentPort on the API server port",
			in:   kon(6443, 8133),
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", apiCollision}},
		},
		{
			name: "adminPort on the API server port",
			in:   kon(8132, 6443),
			want: []fieldErr{{invalid, "spec.konnectivity.adminPort", apiCollision}},
		},
		{
			name: "both ports on the API server port",
			in:   kon(6443, 6443),
			want: []fieldErr{
				{invalid, "spec.konnectivity.agentPort", apiCollision},
				{invalid, "spec.konnectivity.adminPort", apiCollision},
			},
		},
		{name: "API server moved to 7443: konnectivity may take 6443", in: withAPI(7443, kon(6443, 8133))},
		{
			name: "API server moved to 7443: agentPort 7443 collides",
			in:   withAPI(7443, kon(7443, 8133)),
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", apiCollision}},
		},
		{
			name: "API server moved to 7443: adminPort 7443 collides",
			in:   withAPI(7443, kon(8132, 7443)),
			want: []fieldErr{{invalid, "spec.konnectivity.adminPort", apiCollision}},
		},
		{
			name: "API server moved to the default agentPort",
			in:   &k0s.Spec{API: &k0s.API{Port: ptr(8132)}},
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", apiCollision}},
		},
		{
			name: "agentPort on the kubelet port",
			in:   kon(10250, 8133),
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", kubeletCollision}},
		},
		{
			name: "adminPort on the kubelet port",
			in:   kon(8132, 10250),
			want: []fieldErr{{invalid, "spec.konnectivity.adminPort", kubeletCollision}},
		},
		{
			name: "agentPort 0",
			in:   kon(0, 8133),
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", outOfRange}},
		},
		{
			name: "adminPort 70000",
			in:   kon(8132, 70000),
			want: []fieldErr{{invalid, "spec.konnectivity.adminPort", outOfRange}},
		},
		{
			name: "negative agentPort",
			in:   kon(-1, 8133),
			want: []fieldErr{{invalid, "spec.konnectivity.agentPort", outOfRange}},
		},
		{
			name: "both ports out of range and equal: no duplicate reported",
			in:   kon(70000, 70000),
			want: []fieldErr{
				{invalid, "spec.konnectivity.agentPort", outOfRange},
				{invalid, "spec.konnectivity.adminPort", outOfRange},
			},
		},
		{
			name: "API port 0",
			in:   &k0s.Spec{API: &k0s.API{Port: ptr(0)}},
			want: []fieldErr{{invalid, "spec.api.port", outOfRange}},
		},
		{
			name: "API port 70000",
			in:   &k0s.Spec{API: &k0s.API{Port: ptr(70000)}},
			want: []fieldErr{{invalid, "spec.api.port", outOfRange}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.want, tc.in.Validate())
		})
	}
}

func TestValidateDuplicateError(t *testing.T) {
	errs := (&k0s.Spec{Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9000), AdminPort: ptr(9000)}}).Validate()
	want := "spec.konnectivity.adminPort: Duplicate value: 9000: equal to spec.konnectivity.agentPort; konnectivity-server needs two ports"
	if got := errs.ToAggregate(); got == nil || got.Error() != want {
		t.Errorf("Validate() = %v, want %q", got, want)
	}
}

// TestParseCIDR checks ParseCIDR against net.ParseCIDR, which k0s uses.
func TestParseCIDR(t *testing.T) {
	tests := []struct {
		in   string
		want string // the network; "" for an error
	}{
		{in: "10.244.0.0/16", want: "10.244.0.0/16"},
		{in: "10.244.1.0/16", want: "10.244.0.0/16"},
		{in: "10.244.0.0/016", want: "10.244.0.0/16"}, // net.ParseCIDR, as k0s, allows leading zeros
		{in: "10.96.0.1/12", want: "10.96.0.0/12"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "192.168.1.1/32", want: "192.168.1.1/32"},
		{in: "fd00::/108", want: "fd00::/108"},
		{in: "fd00::1234:5678/108", want: "fd00::1230:0/108"},
		{in: "::/0", want: "::/0"},
		{in: "10.0.0.0/33"},
		{in: "fd00::/129"},
		{in: "garbage"},
		{in: ""},
		{in: "10.244.0.0"},
		{in: "10.244.0.0/"},
		{in: "/16"},
		{in: "10.244.0.0/-1"},
		{in: "010.244.0.0/16"},
		{in: " 10.244.0.0/16"},
		{in: "10.244.0.0/16 "},
		{in: "10.244.0.0/16,fd00::/108"},
		{in: "fe80::1%eth0/64"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := k0s.ParseCIDR(tc.in)
			got := ""
			if err == nil {
				got = p.String()
			} else if err.Error() != "invalid CIDR address" {
				t.Errorf("ParseCIDR(%q) error = %q, want %q", tc.in, err, "invalid CIDR address")
			}
			if got != tc.want {
				t.Errorf("ParseCIDR(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			_, netNet, netErr := net.ParseCIDR(tc.in)
			if (netErr == nil) != (err == nil) {
				t.Fatalf("ParseCIDR(%q) error = %v, but net.ParseCIDR error = %v", tc.in, err, netErr)
			}
			if netErr == nil && netNet.String() != got {
				t.Errorf("ParseCIDR(%q) = %s, net.ParseCIDR = %s", tc.in, got, netNet)
			}
		})
	}
}

func TestClusterConfigDeepCopy(t *testing.T) {
	orig := &k0s.ClusterConfig{
		TypeMeta:   metav1.TypeMeta{APIVersion: "k0s.k0sproject.io/v1beta1", Kind: "ClusterConfig"},
		ObjectMeta: metav1.ObjectMeta{Name: "k0s", Namespace: "kube-system", Labels: map[string]string{"a": "b"}},
		Spec:       runtime.RawExtension{Raw: []byte(`{"network":{"provider":"calico"}}`)},
	}
	obj := orig.DeepCopyObject()
	cp, ok := obj.(*k0s.ClusterConfig)
	if !ok {
		t.Fatalf("DeepCopyObject() = %T, want *k0s.ClusterConfig", obj)
	}
	if diff := cmp.Diff(orig, cp); diff != "" {
		t.Fatalf("copy differs from the original (-want +got):\n%s", diff)
	}
	cp.Labels["a"] = "changed"
	cp.Labels["new"] = "x"
	cp.Spec.Raw[2] = 'X'
	cp.Name = "other"
	want := &k0s.ClusterConfig{
		TypeMeta:   metav1.TypeMeta{APIVersion: "k0s.k0sproject.io/v1beta1", Kind: "ClusterConfig"},
		ObjectMeta: metav1.ObjectMeta{Name: "k0s", Namespace: "kube-system", Labels: map[string]string{"a": "b"}},
		Spec:       runtime.RawExtension{Raw: []byte(`{"network":{"provider":"calico"}}`)},
	}
	if diff := cmp.Diff(want, orig); diff != "" {
		t.Errorf("mutating the copy changed the original (-want +got):\n%s", diff)
	}
	if got := (*k0s.ClusterConfig)(nil).DeepCopy(); got != nil {
		t.Errorf("nil DeepCopy() = %v, want nil", got)
	}
}

func TestClusterConfigListDeepCopy(t *testing.T) {
	orig := &k0s.ClusterConfigList{
		ListMeta: metav1.ListMeta{ResourceVersion: "1"},
		Items: []k0s.ClusterConfig{
			{ObjectMeta: metav1.ObjectMeta{Name: "k0s", Labels: map[string]string{"a": "b"}}, Spec: runtime.RawExtension{Raw: []byte(`{}`)}},
		},
	}
	cp, ok := orig.DeepCopyObject().(*k0s.ClusterConfigList)
	if !ok {
		t.Fatalf("DeepCopyObject() = %T, want *k0s.ClusterConfigList", orig.DeepCopyObject())
	}
	if diff := cmp.Diff(orig, cp); diff != "" {
		t.Fatalf("copy differs from the original (-want +got):\n%s", diff)
	}
	cp.Items[0].Labels["a"] = "changed"
	cp.Items[0].Spec.Raw[0] = '['
	cp.Items = append(cp.Items, k0s.ClusterConfig{})
	if got := orig.Items[0].Labels["a"]; got != "b" {
		t.Errorf("original item label = %q, want b", got)
	}
	if got := string(orig.Items[0].Spec.Raw); got != "{}" {
		t.Errorf("original item spec = %q, want {}", got)
	}
	if len(orig.Items) != 1 {
		t.Errorf("original has %d items, want 1", len(orig.Items))
	}
	if got := (*k0s.ClusterConfigList)(nil).DeepCopyObject(); got != nil {
		t.Errorf("nil DeepCopyObject() = %v, want nil", got)
	}
}

func TestAddToScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := k0s.AddToScheme(scheme); err != nil {
		t.Fatalf("AddToScheme(): %v", err)
	}
	for _, tc := range []struct {
		kind string
		want runtime.Object
	}{
		{kind: "ClusterConfig", want: &k0s.ClusterConfig{}},
		{kind: "ClusterConfigList", want: &k0s.ClusterConfigList{}},
	} {
		obj, err := scheme.New(k0s.SchemeGroupVersion.WithKind(tc.kind))
		if err != nil {
			t.Fatalf("scheme.New(%s): %v", tc.kind, err)
		}
		if diff := cmp.Diff(tc.want, obj); diff != "" {
			t.Errorf("scheme.New(%s) mismatch (-want +got):\n%s", tc.kind, diff)
		}
	}
	gvks, _, err := scheme.ObjectKinds(&k0s.ClusterConfig{})
	if err != nil {
		t.Fatalf("ObjectKinds(): %v", err)
	}
	if diff := cmp.Diff([]string{"k0s.k0sproject.io/v1beta1, Kind=ClusterConfig"}, []string{gvks[0].String()}); diff != "" || len(gvks) != 1 {
		t.Errorf("ObjectKinds() = %v (-want +got):\n%s", gvks, diff)
	}
	if got := k0s.SchemeGroupVersion.WithKind("ClusterConfig").GroupKind(); got != k0s.ClusterConfigKind {
		t.Errorf("ClusterConfigKind = %v, want %v", k0s.ClusterConfigKind, got)
	}
}
