package webhook

import (
	"net/http"

	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths the webhooks are served at.
const (
	// ValidatePath is where the validating webhook is served.
	ValidatePath = "/validate"
	// MutatePath is where the mutating webhook is served.
	MutatePath = "/mutate"
)

// Register serves the validator on srv at ValidatePath, behind the strict
// envelope check, with panics recovered into 500 responses.
func Register(srv ctrlwebhook.Server, v *Validator) {
	srv.Register(ValidatePath, Handler(v))
}

// RegisterMutator serves the mutator on srv at MutatePath, like Register.
func RegisterMutator(srv ctrlwebhook.Server, m *Mutator) {
	srv.Register(MutatePath, Handler(m))
}

// Handler returns the HTTP handler for a validator or a mutator, as Register
// serves it: one strict decode of each AdmissionReview (serveReviews), with
// panics recovered into 500 responses.
func Handler(h admission.Handler) http.Handler {
	hook := &admission.Webhook{Handler: h}
	return serveReviews(hook.WithRecoverPanic(true))
}
