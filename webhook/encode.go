package webhook

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// encodeReview encodes the AdmissionReview answering with resp, byte for
// byte as json.Marshal does. The answers the validating webhook gives
// (allowed or denied, with a status and warnings) take a path without
// reflection, which was a tenth of the guard's own CPU per call; any
// other (a patch, audit annotations, status details) goes through
// json.Marshal.
func encodeReview(apiVersion string, resp *admissionv1.AdmissionResponse) ([]byte, error) {
	if !plainResponse(resp) {
		out := admissionv1.AdmissionReview{Response: resp}
		out.APIVersion, out.Kind = apiVersion, "AdmissionReview"
		return json.Marshal(out)
	}
	size := 160 + len(apiVersion) + len(resp.UID)
	if resp.Result != nil {
		size += len(resp.Result.Status) + len(resp.Result.Message) + len(resp.Result.Reason)
	}
	for _, w := range resp.Warnings {
		size += len(w) + 3
	}
	b := make([]byte, 0, size+size/8) // escapes grow it a little

	b = append(b, `{"kind":"AdmissionReview"`...)
	if apiVersion != "" {
		b = append(b, `,"apiVersion":`...)
		b = appendString(b, apiVersion)
	}
	b = append(b, `,"response":{"uid":`...)
	b = appendString(b, string(resp.UID))
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, resp.Allowed)
	if s := resp.Result; s != nil {
		b = append(b, `,"status":{"metadata":{}`...)
		for _, f := range []struct{ name, value string }{{"status", s.Status}, {"message", s.Message}, {"reason", string(s.Reason)}} {
			if f.value != "" {
				b = append(b, `,"`...)
				b = append(b, f.name...)
				b = append(b, `":`...)
				b = appendString(b, f.value)
			}
		}
		if s.Code != 0 {
			b = append(b, `,"code":`...)
			b = strconv.AppendInt(b, int64(s.Code), 10)
		}
		b = append(b, '}')
	}
	if len(resp.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range resp.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...), nil
}

// plainResponse reports whether encodeReview's own path encodes resp:
// no patch, no audit annotations, and a status of code, status, message
// and reason only.
func plainResponse(resp *admissionv1.AdmissionResponse) bool {
	if len(resp.Patch) > 0 || resp.PatchType != nil || len(resp.AuditAnnotations) > 0 {
		return false
	}
	s := resp.Result
	return s == nil || s.TypeMeta == (metav1.TypeMeta{}) && s.ListMeta.SelfLink == "" && s.ListMeta.ResourceVersion == "" &&
		s.ListMeta.Continue == "" && s.ListMeta.RemainingItemCount == nil && s.Details == nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it: quotes, backslashes and control characters; <, > and & for
// HTML; U+2028 and U+2029; invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
