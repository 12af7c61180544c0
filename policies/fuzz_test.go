package policies

import "testing"

// FuzzParseConfig: any config is either accepted with valid actions or an
// error, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("mode: audit\nrules:\n  apiservice-insecure-skip-tls: Off\n"))
	f.Add([]byte("rules: [a, b]\n"))
	f.Add([]byte("exemptNamespaces: [\"\"]\n"))
	rules := DefaultRules()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, rules)
		if err != nil {
			return
		}
		for name, a := range cfg.Rules {
			if _, perr := ParseAction(string(a)); perr != nil {
				t.Fatalf("rule %s accepted with invalid action %q", name, a)
			}
		}
		if cfg.Mode != ModeEnforce && cfg.Mode != ModeAudit {
			t.Fatalf("invalid mode %q accepted", cfg.Mode)
		}
	})
}
