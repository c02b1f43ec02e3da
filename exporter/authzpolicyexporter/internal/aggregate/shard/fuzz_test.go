package shard

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecode: Decode never panics, and what it accepts encodes again to
// the very same bytes. With sealed, the input is taken for a payload and
// given a valid envelope and sum, so that the fuzzer reaches past the
// checksum into the aggregate and callee states.
func FuzzDecode(f *testing.F) {
	good := Encode(sample(f, "r", 5, 20))
	f.Add(good, false)
	f.Add(Encode(Shard{Replica: "r", Written: t0}), false)
	f.Add(good[:len(good)/2], false)
	f.Add([]byte(`{"format":"authz-policy-shard","version":2}`), false)
	i := bytes.Index(good, []byte(`"payload":`)) + len(`"payload":`)
	f.Add(good[i:len(good)-1], true)
	f.Add([]byte(`{"aggregate":{"version":1,"entries":[]},"callees":null}`), true)
	f.Add([]byte(`{"aggregate":{"version":1,"entries":[{"d":"a","s":"b","m":"GET","r":"/","c":1,"f":1,"l":2}]},"callees":{"version":1,"callees":[{"id":"a","first":1}]}}`), true)
	f.Fuzz(func(t *testing.T, data []byte, sealed bool) {
		if sealed {
			h := head("r", t0)
			env := append(append(bytes.Clone(h), sumHead...), hex.EncodeToString(checksum(h, data))...)
			data = append(append(append(env, sumTail...), data...), '}')
		}
		s, err := Decode(data, "r", 1<<20)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("an error without a reason: %v", err)
			}
			return
		}
		if again := Encode(s); !bytes.Equal(again, data) {
			t.Fatalf("decoded, but encodes to other bytes:\n%q\n%q", data, again)
		}
	})
}
