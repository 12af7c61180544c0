// Package netpol decides whether a source can reach a pod on a port and
// protocol under a set of NetworkPolicies, and explains why. It is pure: it
// takes the policies and plain descriptions of both ends, and never talks to a
// cluster.
//
// Compile turns policies into a Set once (selectors, CIDRs and ports parsed,
// policies indexed by namespace); a Set is immutable and safe for concurrent
// use, and Set.With derives the set after a CREATE, UPDATE or DELETE without
// recompiling the rest. Set.Ingress evaluates the destination side, Set.Egress
// the source side, and Set.Reach both: a connection succeeds only when the
// source pod may send it and the destination pod may receive it. Evaluate is
// Compile plus Reach. Each Verdict says whether the traffic is allowed, which
// policies isolate the pod, which rule allowed it (or why none had to), and
// carries a one-line Explanation for messages.
//
// The semantics are those of the Kubernetes NetworkPolicy API:
//
//   - A pod is isolated for a direction only by policies in its namespace whose
//     spec.podSelector selects it and whose policyTypes list that direction.
//     Absent policyTypes default as the API server defaults them: Ingress
//     always, plus Egress when spec.egress is non-empty.
//   - Rules are a union: traffic is allowed when any rule of any isolating
//     policy allows it. `ingress: []` (or none) allows nothing; `[{}]` allows
//     everything. An empty or missing `from`/`to` matches every peer, an empty
//     or missing `ports` every port and protocol.
//   - In one peer, podSelector and namespaceSelector are ANDed; separate peers
//     are ORed. A peer without namespaceSelector means the policy's namespace;
//     an empty namespaceSelector means every namespace. A policy with an empty
//     namespace is taken to be in "default", as kubectl does without -n. The
//     label kubernetes.io/metadata.name always equals the namespace name, as
//     the API server guarantees, whether or not the caller passes it.
//   - Label selectors follow k8s.io/apimachinery/pkg/labels: NotIn and
//     DoesNotExist match objects that lack the key.
//   - ipBlock matches the peer's IP (IPv4 or IPv6, IPv4-mapped IPv6 addresses
//     taken as IPv4) inside cidr and outside every except; another rule may
//     still allow an IP that one rule excepts. ipBlock matches pod IPs too, as
//     the upstream e2e tests expect (some plugins, e.g. Cilium by default, do
//     not). A CIDR with host bits set is masked; IPv4 octets with leading zeros
//     are read as decimal, as the API server's legacy parser does.
//   - A named port is resolved on the destination pod's container ports: it
//     matches port N/protocol P when the pod has a container port with that
//     name, number N and protocol P (containers and restartable init
//     containers; container port protocol defaults to TCP). Toward a non-pod
//     or hostNetwork destination a named port matches nothing. endPort makes
//     an inclusive range. The protocol defaults to TCP, for the traffic and for the policy.
//     Service ports are never used: callers pass the pod-side port.
//   - Ingress from the destination pod's own node is always allowed: a non-pod
//     source (or hostNetwork pod) whose node is the pod's node. Rules are tried
//     first, so Reason is SameNode only when no rule would allow it.
//   - hostNetwork pods are their node: pod and namespace selectors never match
//     them, a hostNetwork source is matched by its IP (the node IP) only, and a
//     hostNetwork destination (or source, for egress) is not policed. Non-pod
//     sources are matched only by ipBlock or an empty `from`.
//
// Invalid policy content that the API server would reject never panics. It is
// reported as an Issue (Set.Issues, and Verdict.Issues for the policies that
// took part in a verdict) and decided as follows: an invalid spec.podSelector
// selects no pod; an invalid peer (unparsable or empty cidr, an except that is
// not a strict subset of cidr, ipBlock combined with a selector, no field set,
// an invalid selector) matches nothing; an invalid port entry (port outside
// 1-65535, empty name, endPort without a numeric port or below port, unknown
// protocol) matches nothing; an unknown policyType is ignored. A rule whose
// peers or ports are all invalid therefore allows nothing.
//
// Set.WithCluster adds ClusterNetworkPolicies (policy.networking.k8s.io,
// v1beta1; v1alpha2 converts with ClusterNetworkPolicyFromV1Alpha2), which
// every evaluation then applies in the order the dataplane does:
//
//   - The Admin tier, policies by priority (lower first; equal priorities in
//     name order, which the API leaves to the implementation), each
//     policy's rules in order: the first rule whose peers and protocols
//     match decides. Accept allows, Deny denies, and nothing later counts;
//     Pass skips the rest of the tier (Verdict.PassedBy names it).
//   - The NetworkPolicies, as above, when one isolates the pod.
//   - The Baseline tier, the same way, only for a pod no NetworkPolicy
//     isolates; with no match either, the traffic is allowed.
//
// A policy applies to the pods its subject selects (namespaces, or pods in
// namespaces); host-networked pods are no subjects, as for NetworkPolicy.
// Peers namespaces and pods match pod-network pods only, so a Baseline
// deny of every namespace stops konnectivity agents but not an API server
// that is no pod; egress peers networks match addresses (pods' included),
// an empty nodes selector any node address. A peer that sets no field
// fails closed as the API says (an Accept matches nothing, a Deny or Pass
// everything); a nodes selector with labels, and domainNames, match
// nothing (the guard knows no node labels and resolves no names); an
// unknown tier or action leaves the policy or rule out. Verdict.Tier and
// Verdict.DecidedBy name the layer and the rule that decided.
//
// CompileCilium builds a separate model, for clusters whose CNI is Cilium
// (CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, read into small
// structs of our own), selected by Set.WithCilium. Following Cilium's policy
// documentation: a rule selects pods by endpointSelector (a namespaced
// policy in its namespace only), with label sources (k8s:, any:) ignored
// and a pod's namespace and namespace labels as io.kubernetes.pod.namespace
// and io.cilium.k8s.namespace.labels.<key>; a pod a rule with ingress or
// ingressDeny selects is in default deny, unless the rule sets
// enableDefaultDeny.ingress false; a matching ingressDeny wins over any
// allow; fromEndpoints of a namespaced policy that name no namespace mean
// its own; a source is the entity its place makes it, seen from the pod:
// a pod-network pod is cluster, an address of the pod's own node host (and
// always let in, Cilium's allow-localhost default), of another node
// remote-node (both within cluster), any other address world, and the API
// server also kube-apiserver; fromCIDR and fromCIDRSet match addresses
// outside the cluster only (no pod, no node), as Cilium's default CIDR
// match mode does; toPorts take numbers, names, endPort ranges and
// TCP/UDP/SCTP/ANY; L7 rules change nothing; fromNodes and CIDR groups
// match nothing (the guard knows no node labels and resolves no groups).
// Egress is the mirror image (egress, egressDeny, to... peers), without
// the own-node exception. NetworkPolicies join Cilium's union: a pod any of
// them or any Cilium rule selects is in default deny for the direction, any
// allow of either admits, and NetworkPolicy ipBlocks, like Cilium CIDRs,
// match addresses outside the cluster only.
package netpol
