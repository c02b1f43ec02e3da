package lifecycle

import (
	"bytes"
	"testing"
	"time"
)

// A saved state is read back from storage: whatever it holds, restoring it
// never panics, never un-enforces a callee, and what it restored encodes
// to a state that restores to the same modes.
func FuzzRestoreState(f *testing.F) {
	f.Add([]byte(`{"version":1,"callees":[{"id":"spiffe://example.org/a","first":1,"enforced":true,"workload_version":"v1"}]}`))
	f.Add([]byte(`{"version":1,"callees":[{"id":"spiffe://example.org/a","first":-9223372036854775808,"relearn_from":5,"relearn_until":1}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`not json`))
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		l := New(Config{LearningPeriod: time.Hour, RelearnPeriod: time.Hour, Limit: 100})
		l.Enforced([]string{"spiffe://example.org/a"}, now)
		if _, err := l.RestoreState(data); err != nil {
			return
		}
		if got := l.Modes(now)["spiffe://example.org/a"]; got.Mode != Enforce && got.Reason != Relearning {
			t.Fatalf("restoring un-enforced a callee: %+v", got)
		}
		saved, err := l.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		again := New(Config{LearningPeriod: time.Hour, RelearnPeriod: time.Hour, Limit: 100})
		if _, err := again.RestoreState(saved); err != nil {
			t.Fatal(err)
		}
		resaved, err := again.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(saved, resaved) {
			t.Fatalf("state changed in a round trip:\n%s\n%s", saved, resaved)
		}
	})
}
