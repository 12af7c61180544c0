// Package policies is the guard's policy engine. A Rule is a pure function of a
// Review (what is being written) and a cluster.View (what the cluster looks
// like) returning Results; the Engine runs every enabled rule, applies the
// configured Action per rule, and returns all Findings. The webhook, the audit
// scan and the offline check all call the same Engine and only differ in what
// they do with the findings.
package policies
