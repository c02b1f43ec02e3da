package aggregate

import (
	"encoding/json"
	"fmt"
	"time"
)

// stateVersion changes when the encoding does; an unknown version is
// refused rather than misread.
const stateVersion = 1

type state struct {
	Version int           `json:"version"`
	Entries []stateRecord `json:"entries"`
}

type stateRecord struct {
	Destination string `json:"d"`
	Source      string `json:"s"`
	Method      string `json:"m"`
	Route       string `json:"r"`
	Count       uint64 `json:"c"`
	FirstSeen   int64  `json:"f"` // Unix nanoseconds
	LastSeen    int64  `json:"l"`
	Buckets     uint64 `json:"b,omitempty"`
	Values      uint64 `json:"v,omitempty"`
	Origin      uint8  `json:"o,omitempty"`
}

// MarshalState encodes every record, sorted, so that the aggregate can be
// restored after a restart.
func (a *Aggregate) MarshalState() ([]byte, error) {
	recs := a.Snapshot()
	st := state{Version: stateVersion, Entries: make([]stateRecord, len(recs))}
	for i, r := range recs {
		st.Entries[i] = stateRecord{
			Destination: r.Destination, Source: r.Source, Method: r.Method, Route: r.Route,
			Count: r.Count, FirstSeen: r.FirstSeen.UnixNano(), LastSeen: r.LastSeen.UnixNano(), Buckets: r.Buckets,
			Values: r.Values, Origin: r.Origin,
		}
	}
	return json.Marshal(st)
}

// RestoreState adds the records of an encoded state, as if observed again:
// restoring twice changes nothing that matters, and the cap still applies.
// It returns how many records the state held.
func (a *Aggregate) RestoreState(data []byte) (int, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("decoding aggregate state: %w", err)
	}
	if st.Version != stateVersion {
		return 0, fmt.Errorf("aggregate state version %d is not supported (want %d)", st.Version, stateVersion)
	}
	recs := make([]Record, len(st.Entries))
	for i, e := range st.Entries {
		recs[i] = Record{
			Key:   Key{Destination: e.Destination, Source: e.Source, Method: e.Method, Route: e.Route},
			Stats: Stats{Count: e.Count, FirstSeen: time.Unix(0, e.FirstSeen).UTC(), LastSeen: time.Unix(0, e.LastSeen).UTC(), Buckets: e.Buckets, Values: e.Values, Origin: e.Origin},
		}
	}
	a.Observe(recs)
	return len(recs), nil
}
