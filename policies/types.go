package policies

import (
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Action is what happens when a rule finds something.
type Action string

const (
	// Enforce denies the admission request.
	Enforce Action = "Enforce"
	// Warn allows the request and returns a warning to the client.
	Warn Action = "Warn"
	// Audit allows the request silently and records an audit annotation.
	Audit Action = "Audit"
	// Off disables the rule: it is not evaluated.
	Off Action = "Off"
)

// Operation is the kind of write under review.
type Operation string

const (
	// Create is a new object.
	Create Operation = "CREATE"
	// Update replaces an existing object.
	Update Operation = "UPDATE"
	// Delete removes an object; Review.Object is nil.
	Delete Operation = "DELETE"
)

// Judgement says what a review asks of the rules that judge a set of
// objects together (the NetworkPolicies of a namespace).
type Judgement int

const (
	// JudgeChange is admission's question: does this write make things worse?
	// The state after the write is compared with the state before it, and a
	// finding needs a path the write closes.
	JudgeChange Judgement = iota
	// JudgeState is the offline check's and audit's question: is the state the
	// view holds bad now? Every policy in the view is in force, the reviewed
	// one included, and it is compared with no policy at all; a finding is
	// reported on a policy that takes part in the harm.
	JudgeState
)

// Review is one object write submitted to the engine, whatever the entry point.
type Review struct {
	// Operation is CREATE, UPDATE or DELETE. The offline check uses CREATE.
	Operation Operation
	// Judge is the question asked; default JudgeChange.
	Judge Judgement
	// Kind is the group/kind of the object.
	Kind schema.GroupKind
	// Object is the object after the write (nil on DELETE); typed. Rules
	// read it through Objects, which decodes it first when it is deferred.
	Object runtime.Object
	// OldObject is the object before the write (nil on CREATE); typed.
	OldObject runtime.Object
	// Validated is true when an API server has already validated Object: in
	// admission, validating webhooks run after the API server's own
	// validation, so findings about fields it rejects cannot arise. False for
	// the offline check, which reads files nobody has validated.
	Validated bool
	// Namespace and Name identify the object.
	Namespace, Name string
	// User is the requesting user name, when known.
	User string
	// FieldManager is the write's field manager, when the request names one
	// (kubectl: "kubectl-client-side-apply", "kubectl", ...).
	FieldManager string
	// DryRun is true for dry-run requests: nothing is recorded.
	DryRun bool
	// Now is the evaluation time; zero means time.Now().
	Now time.Time

	// evaluation is the engine's state for the evaluation under way; rules
	// reach its fields (memo, caches, settings) through the review.
	*evaluation

	// decode, when set, fills Object and OldObject on first use.
	decode    func() (obj, old runtime.Object, err error)
	decodeErr error
}

// DecodeLazily defers decoding the objects: decode runs the first time a
// rule asks for them, at most once, and its results become Object and
// OldObject. A review whose rules never look at the objects (a NetworkPolicy
// written where nothing protected runs) never pays for decoding them.
func (r *Review) DecodeLazily(decode func() (obj, old runtime.Object, err error)) {
	r.decode = decode
}

// Objects returns Object and OldObject, decoding them first if decoding was
// deferred. When decoding fails both are nil and DecodeErr says why.
func (r *Review) Objects() (obj, old runtime.Object) {
	if d := r.decode; d != nil {
		r.decode = nil
		r.Object, r.OldObject, r.decodeErr = d()
		if r.decodeErr != nil {
			r.Object, r.OldObject = nil, nil
		}
	}
	return r.Object, r.OldObject
}

// DecodeErr is the error of the deferred decoding, if it ran and failed. An
// entry point that defers decoding checks it after evaluation: the findings
// of a review whose objects could not be decoded mean nothing.
func (r *Review) DecodeErr() error { return r.decodeErr }

// ObjectRef names the object a finding is about.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
}

// Result is what a rule reports; the engine turns it into a Finding.
type Result struct {
	// Message says what is wrong, without the rule name.
	Message string
	// Fix says how to fix it; may be empty.
	Fix string
	// Detail is a longer explanation, given in denials only; may be empty.
	Detail string
	// Advisory caps the action at Warn: an Enforce rule reports something it is
	// not sure enough of to deny (for example an expiring, not yet expired,
	// certificate).
	Advisory bool
	// Ahead marks a result about what has not happened yet (a certificate
	// that will expire): it cannot explain an outage now.
	Ahead bool
}

// Finding is one rule's verdict on one review, with the action to take.
type Finding struct {
	Rule    string    `json:"rule"`
	Action  Action    `json:"action"`
	Object  ObjectRef `json:"object"`
	Message string    `json:"message"`
	Fix     string    `json:"fix,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	// Ahead is set when the finding is about what has not happened yet
	// (see Result.Ahead).
	Ahead bool `json:"ahead,omitempty"`
}

// String renders the finding as "[rule] message Fix: fix".
func (f Finding) String() string {
	s := "[" + f.Rule + "] " + f.Message
	if f.Fix != "" {
		s += " Fix: " + f.Fix
	}
	return s
}

// now returns the review's evaluation time.
func (r *Review) now() time.Time {
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	return r.Now
}
