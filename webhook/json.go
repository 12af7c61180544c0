package webhook

import (
	"errors"
	"fmt"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
)

// The JSON a review decodes: the AdmissionReview, its options and the
// objects in it. encoding/json/v2 (github.com/go-json-experiment/json, the
// module the standard library's json/v2 comes from) decodes in one pass;
// encoding/json, and sigs.k8s.io/json built on it, scan every value twice
// (a validity scan, then the decode): half a review's CPU went there.
var (
	// objectJSON decodes as sigs.k8s.io/json's case-sensitive decoding
	// does: member names matched exactly (v2's default), invalid UTF-8
	// replaced by U+FFFD, and a repeated name decoded again into the same
	// field. TestObjectDecodingMatchesSigsJSON holds the two to the same
	// result.
	objectJSON = jsonv2.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	// envelopeJSON decodes an AdmissionReview strictly: an unknown member
	// (or a known one in the wrong case) is an error, and so is a repeated
	// member anywhere in the body, inside the objects too (sigs.k8s.io/json
	// did not look inside them). The API server writes every object it
	// sends anew; a body with a repeated name was not written by it.
	envelopeJSON = jsonv2.JoinOptions(jsonv2.RejectUnknownMembers(true), jsontext.AllowInvalidUTF8(true))
)

// decodeObject decodes JSON the API server wrote into out.
func decodeObject(data []byte, out any) error {
	return jsonv2.Unmarshal(data, out, objectJSON)
}

// decodeEnvelopeJSON decodes an AdmissionReview strictly into ar.
func decodeEnvelopeJSON(body []byte, ar *admissionv1.AdmissionReview) error {
	if err := jsonv2.Unmarshal(body, ar, envelopeJSON); err != nil {
		return envelopeError(err)
	}
	return nil
}

// envelopeError says what is wrong with a body that does not decode as an
// AdmissionReview, naming an unknown or repeated field by its path.
func envelopeError(err error) error {
	var semantic *jsonv2.SemanticError
	if errors.As(err, &semantic) && errors.Is(semantic.Err, jsonv2.ErrUnknownName) {
		return fmt.Errorf("invalid AdmissionReview: unknown field %q", fieldPath(semantic.JSONPointer))
	}
	var syntactic *jsontext.SyntacticError
	if errors.As(err, &syntactic) && errors.Is(syntactic.Err, jsontext.ErrDuplicateName) {
		return fmt.Errorf("invalid AdmissionReview: duplicate field %q", fieldPath(syntactic.JSONPointer))
	}
	return fmt.Errorf("body is not a JSON AdmissionReview: %w", err)
}

// fieldPath writes a JSON pointer as the dotted path Kubernetes' strict
// decoding names fields by: /request/bogus is request.bogus.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}
