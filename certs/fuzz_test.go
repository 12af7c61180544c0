package certs

import "testing"

// FuzzParseBundle: any input is either certificates or an error, never a panic.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseBundle(data)
		if err == nil && len(certs) == 0 {
			t.Fatalf("no error and no certificate for %q", data)
		}
	})
}
