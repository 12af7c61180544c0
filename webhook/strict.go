package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// maxBodyBytes matches controller-runtime's limit for an AdmissionReview: two
// objects of at most 3 MiB each plus the envelope.
const maxBodyBytes = 7 << 20

// strictReviews checks the AdmissionReview envelope before controller-runtime
// decodes it, which is lenient: the body must be an admission.k8s.io
// AdmissionReview with a request and a uid, and have no unknown or duplicate
// fields. Objects inside the review are left to the handler. Bodies over the
// size limit are passed through for controller-runtime to refuse (413).
func strictReviews(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
			return
		}
		if len(body) <= maxBodyBytes && len(bytes.TrimSpace(body)) > 0 {
			if err := checkEnvelope(body); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
		}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		if t := r.URL.Query().Get("timeout"); t != "" {
			r = r.WithContext(withCallerTimeout(r.Context(), t))
		}
		next.ServeHTTP(w, r)
	})
}

// checkEnvelope validates the AdmissionReview wrapper.
func checkEnvelope(body []byte) error {
	var ar admissionv1.AdmissionReview
	strictErrs, err := sigsjson.UnmarshalStrict(body, &ar)
	if err != nil {
		return fmt.Errorf("body is not a JSON AdmissionReview: %w", err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("invalid AdmissionReview: %w", strictErrs[0])
	}
	if ar.APIVersion != "admission.k8s.io/v1" && ar.APIVersion != "admission.k8s.io/v1beta1" || ar.Kind != "AdmissionReview" {
		return fmt.Errorf("body is a %s %s, want an admission.k8s.io/v1 AdmissionReview", ar.APIVersion, ar.Kind)
	}
	if ar.Request == nil {
		return fmt.Errorf("AdmissionReview has no request")
	}
	if ar.Request.UID == "" {
		return fmt.Errorf("AdmissionReview request has no uid")
	}
	return nil
}

// writeError answers like controller-runtime does: HTTP 200 with an
// AdmissionReview whose response carries the error code and message.
func writeError(w http.ResponseWriter, code int32, err error) {
	resp := admission.Errored(code, err)
	ar := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	ar.APIVersion, ar.Kind = "admission.k8s.io/v1", "AdmissionReview"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ar)
}
