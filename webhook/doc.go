// Package webhook is the admission transport: it decodes AdmissionReviews into
// policies.Review, runs the policy engine, and turns findings into a
// controller-runtime admission.Response (deny, warnings, audit annotations),
// plus Events and metrics. It holds no policy logic of its own.
package webhook
