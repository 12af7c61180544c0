package webhook

import (
	"net/http"

	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ValidatePath is where the validating webhook is served.
const ValidatePath = "/validate"

// Register serves the validator on srv at ValidatePath, behind the strict
// envelope check, with panics recovered into 500 responses.
func Register(srv ctrlwebhook.Server, v *Validator) {
	srv.Register(ValidatePath, Handler(v))
}

// Handler returns the HTTP handler for a validator, as Register serves it.
func Handler(v *Validator) http.Handler {
	hook := &admission.Webhook{Handler: v}
	return strictReviews(hook.WithRecoverPanic(true))
}
