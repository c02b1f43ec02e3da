// Package browsertest holds what the tests that drive Chromium share.
package browsertest

import (
	"os"
	"testing"
	"time"
)

// Profile is a new profile directory for Chromium. Not a t.TempDir:
// Chromium's helper processes may still write to it for a moment after
// the browser exits, which would fail the test's cleanup; it is removed
// when they are done, or left to the system's temp cleaner.
func Profile(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chromium-profile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}
