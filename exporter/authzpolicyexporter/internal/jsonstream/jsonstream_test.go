package jsonstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		keys      []string
		err       string
	}{
		{name: "empty", doc: `{}`},
		{name: "keys in order, values skipped", doc: `{"a":{"x":[1,{}]},"b":"s","c":null}`, keys: []string{"a", "b", "c"}},
		{name: "not an object", doc: `[1]`, err: "want {"},
		{name: "cut", doc: `{"a":1`, err: "EOF"},
		{name: "bad value", doc: `{"a":tru}`, err: "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tc.doc))
			var keys []string
			err := Fields(dec, func(k string) error {
				keys = append(keys, k)
				return Skip(dec)
			})
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tc.keys, keys)
		})
	}
}
