package authzctl

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// The input document parser never panics, and what it accepts is an
// object whose request has a string method and path, as it reports them.
func FuzzParseInput(f *testing.F) {
	for _, r := range []req{
		mtls(balances, frontend, "GET", "/balances/1"),
		xfcc(balances, frontend, "POST", "/a?b=c"),
		grpc(ledger, payments, "/bank.Ledger/Transfer"),
	} {
		data, err := json.Marshal(r.Input())
		require.NoError(f, err)
		f.Add(data)
	}
	for _, s := range []string{``, `null`, `[]`, `{}`, `{"attributes":{"request":{"http":{"method":1,"path":"/"}}}}`,
		`{"attributes":{"request":{"http":{"method":"GET","path":"/","headers":[]}}}} {}`, `{"a":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		input, r, err := parseInput(data)
		if err != nil {
			return
		}
		http, ok := at(input, "attributes", "request", "http").(map[string]any)
		if !ok || http["method"] != r.Method || http["path"] != r.Path {
			t.Fatalf("accepted %q as %+v", data, r)
		}
	})
}
