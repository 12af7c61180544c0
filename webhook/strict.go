package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
)

// maxBodyBytes matches controller-runtime's limit for an AdmissionReview: two
// objects of at most 3 MiB each plus the envelope.
const maxBodyBytes = 7 << 20

// serveReviews serves AdmissionReviews to hook with one decode of each
// body: the envelope is checked strictly while it is decoded (it must be an
// admission.k8s.io AdmissionReview with a request and a uid, and have no
// unknown or duplicate fields; objects inside the review are left to the
// handler), and the decoded request goes to hook.Handle, which recovers
// panics and completes the response. Errors are answered as
// controller-runtime answers them: an empty body, a wrong content type or an
// undecodable review is a 400, a body over the size limit a 413, each as an
// AdmissionReview response. The response has the request's API version.
func serveReviews(hook *admission.Webhook) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			writeError(w, http.StatusBadRequest, errors.New("request body is empty"))
			return
		}
		defer r.Body.Close()
		body, err := readBody(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
			return
		}
		if len(body) > maxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxBodyBytes))
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeError(w, http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", ct))
			return
		}
		ar, err := decodeEnvelope(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ctx := r.Context()
		if t := r.URL.Query().Get("timeout"); t != "" {
			ctx = withCallerTimeout(ctx, t)
		}
		rep := &reply{w: w, apiVersion: ar.APIVersion}
		resp := hook.Handle(context.WithValue(ctx, replyKey{}, rep), admission.Request{AdmissionRequest: *ar.Request})
		rep.send(&resp.AdmissionResponse, false)
	})
}

// reply writes the answer to one AdmissionReview, once: the handler's
// answer when it returns, or an earlier one (answerNow) when the review's
// budget runs out first.
type reply struct {
	mu         sync.Mutex
	w          http.ResponseWriter
	apiVersion string
	sent       bool
}

type replyKey struct{}

// send writes resp unless an answer went out already. An early answer is
// written while the handler still runs (until its rule returns): its
// length ends it for the API server, and the connection is not reused.
func (r *reply) send(resp *admissionv1.AdmissionResponse, early bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent {
		return
	}
	r.sent = true
	body, err := encodeReview(r.apiVersion, resp)
	if err != nil {
		writeError(r.w, http.StatusInternalServerError, fmt.Errorf("encoding the response: %w", err))
		return
	}
	body = append(body, '\n')
	h := r.w.Header()
	h.Set("Content-Type", "application/json")
	if early {
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Connection", "close")
	}
	_, _ = r.w.Write(body)
	if early {
		_ = http.NewResponseController(r.w).Flush()
	}
}

// answerNow sends resp for req at once, when ctx is a review's that
// serveReviews serves (else the answer goes out when the handler returns).
func answerNow(ctx context.Context, req admission.Request, resp admission.Response) {
	rep, _ := ctx.Value(replyKey{}).(*reply)
	if rep == nil || resp.Complete(req) != nil {
		return
	}
	rep.send(&resp.AdmissionResponse, true)
}

// readBody reads up to maxBodyBytes+1 bytes of the request's body into a
// buffer of its announced length (the API server sends one), so that a
// review's body is not copied as it grows.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		// The server ends the body at its length; a body longer than
		// announced is not read.
		return body, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
}

// decodeEnvelope decodes an AdmissionReview strictly and checks its
// envelope.
func decodeEnvelope(body []byte) (*admissionv1.AdmissionReview, error) {
	var ar admissionv1.AdmissionReview
	if err := decodeEnvelopeJSON(body, &ar); err != nil {
		return nil, err
	}
	if ar.APIVersion != "admission.k8s.io/v1" && ar.APIVersion != "admission.k8s.io/v1beta1" || ar.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("body is a %s %s, want an admission.k8s.io/v1 AdmissionReview", ar.APIVersion, ar.Kind)
	}
	if ar.Request == nil {
		return nil, fmt.Errorf("AdmissionReview has no request")
	}
	if ar.Request.UID == "" {
		return nil, fmt.Errorf("AdmissionReview request has no uid")
	}
	return &ar, nil
}

// maxErrorText caps the message of an error answer, which carries text
// from the request (a field name, a kind).
const maxErrorText = 1000

// errored is admission.Errored with the error's text made printable and
// capped: the request's sender may be anyone who reaches the webhook.
func errored(code int32, err error) admission.Response {
	return admission.Errored(code, errors.New(shorten.Printable(err.Error(), maxErrorText)))
}

// writeError answers like controller-runtime does: HTTP 200 with an
// AdmissionReview whose response carries the error code and message.
func writeError(w http.ResponseWriter, code int32, err error) {
	resp := errored(code, err)
	ar := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	ar.APIVersion, ar.Kind = "admission.k8s.io/v1", "AdmissionReview"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ar)
}
