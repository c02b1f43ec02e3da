// Package lifecycle decides each callee's mode. A callee learns in audit
// mode for a period counted from the first time it was observed, then is
// enforced. Once a callee has been published as enforced, nothing but an
// operator rule or a new version of its workload puts it back in audit: not
// a restart, a lost state or a clock step, since audit allows everything.
package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// Mode is how the policy treats a callee's requests.
type Mode string

const (
	// Audit allows every request and marks those the learned policy
	// would deny.
	Audit Mode = "audit"
	// Enforce allows what was learned or granted, and nothing else.
	Enforce Mode = "enforce"
)

// ParseMode accepts "audit" and "enforce".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Audit, Enforce:
		return m, nil
	}
	return "", fmt.Errorf("mode %q must be audit or enforce", s)
}

// Rule is an operator's mode for the callees its patterns match.
type Rule struct {
	Callees []spiffeid.Pattern
	Mode    Mode
}

// Config is how modes are decided.
type Config struct {
	// LearningPeriod is each callee's time in audit mode after it was
	// first observed; 0 enforces every callee from the start.
	LearningPeriod time.Duration
	// RelearnPeriod is an enforced callee's time back in audit mode after
	// its workload announced a new version; 0 turns relearning off.
	RelearnPeriod time.Duration
	// Rules win over everything else, first match first.
	Rules []Rule
	// Limit caps the callees remembered.
	Limit int
}

// Reason says why a callee has its mode.
type Reason string

const (
	ByRule     Reason = "rule"     // an operator's modes entry
	Relearning Reason = "relearn"  // a new version is being learned
	Learning   Reason = "learning" // within its learning period
	Learned    Reason = "learned"  // past its learning period
)

// Status is a callee's mode now, why, and until when it lasts when it is
// a learning or relearning period.
type Status struct {
	Mode   Mode
	Reason Reason
	Until  time.Time
}

type callee struct {
	first time.Time
	// enforced: a bundle enforcing this callee was published; the
	// learning period can never audit it again.
	enforced                  bool
	version                   string
	relearnFrom, relearnUntil time.Time
}

// Lifecycle is safe for concurrent use.
type Lifecycle struct {
	cfg     Config
	mu      sync.Mutex
	callees map[string]*callee
}

// New returns a lifecycle that knows no callee yet.
func New(cfg Config) *Lifecycle {
	return &Lifecycle{cfg: cfg, callees: map[string]*callee{}}
}

// Rule returns the mode of the first operator rule matching id.
func (l *Lifecycle) Rule(id string) (Mode, bool) {
	for _, r := range l.cfg.Rules {
		for _, p := range r.Callees {
			if p.Match(id) {
				return r.Mode, true
			}
		}
	}
	return "", false
}

// get returns id's record, creating it as first observed at first; nil
// when the limit is reached. The lock is held.
func (l *Lifecycle) get(id string, first time.Time) *callee {
	if c, ok := l.callees[id]; ok {
		return c
	}
	if len(l.callees) >= l.cfg.Limit {
		return nil
	}
	c := &callee{first: first}
	l.callees[id] = c
	return c
}

// Seen records that callee id was observed, first at first. A callee
// already known keeps its start: a period is never reopened. It reports
// false when the limit keeps a new callee out.
func (l *Lifecycle) Seen(id string, first time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.get(id, first) != nil
}

// Version records the version a span of callee id announced at now, and
// reports whether it put the callee back in audit mode to relearn. Only a
// value differing from the last one recorded is a change; the first value
// is not one.
func (l *Lifecycle) Version(id, version string, now time.Time) (relearn bool) {
	if version == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(id, now)
	if c == nil || c.version == version {
		return false
	}
	changed := c.version != ""
	c.version = version
	if !changed || l.cfg.RelearnPeriod <= 0 {
		return false
	}
	if _, ok := l.Rule(id); ok {
		return false // an operator decides this callee's mode
	}
	active := !now.Before(c.relearnFrom) && now.Before(c.relearnUntil)
	if !active && l.status(c, now).Mode != Enforce {
		return false // still learning: the new routes are learned anyway
	}
	if !active {
		c.relearnFrom = now
	}
	// A rollout interleaves old and new versions: each change extends the
	// relearning, but only its start is reported.
	c.relearnUntil = now.Add(l.cfg.RelearnPeriod)
	return !active
}

// Enforced records that the bundle in place enforces these callees (or, for
// a state that could not be read, that their periods are over).
func (l *Lifecycle) Enforced(ids []string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if c := l.get(id, now); c != nil {
			c.enforced = true
		}
	}
}

// Modes returns the status of every known callee at now.
func (l *Lifecycle) Modes(now time.Time) map[string]Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Status, len(l.callees))
	for id, c := range l.callees {
		if m, ok := l.Rule(id); ok {
			out[id] = Status{Mode: m, Reason: ByRule}
			continue
		}
		out[id] = l.status(c, now)
	}
	return out
}

// status decides a callee's mode without operator rules; the lock is held.
func (l *Lifecycle) status(c *callee, now time.Time) Status {
	if !now.Before(c.relearnFrom) && now.Before(c.relearnUntil) {
		return Status{Mode: Audit, Reason: Relearning, Until: c.relearnUntil}
	}
	if c.enforced {
		return Status{Mode: Enforce, Reason: Learned}
	}
	// A clock stepped back keeps a callee that was never enforced in its
	// period; one that was enforced is caught above.
	if until := c.first.Add(l.cfg.LearningPeriod); l.cfg.LearningPeriod > 0 && now.Before(until) {
		return Status{Mode: Audit, Reason: Learning, Until: until}
	}
	return Status{Mode: Enforce, Reason: Learned}
}

// Known lists the known callees, sorted.
func (l *Lifecycle) Known() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.callees))
	for id := range l.callees {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Len returns the number of known callees.
func (l *Lifecycle) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callees)
}

// stateVersion changes when the encoding does.
const stateVersion = 1

type state struct {
	Version int           `json:"version"`
	Callees []stateCallee `json:"callees"`
}

type stateCallee struct {
	ID           string `json:"id"`
	First        int64  `json:"first"` // Unix nanoseconds
	Enforced     bool   `json:"enforced,omitempty"`
	Version      string `json:"workload_version,omitempty"`
	RelearnFrom  int64  `json:"relearn_from,omitempty"`
	RelearnUntil int64  `json:"relearn_until,omitempty"`
}

// MarshalState encodes every callee, sorted, for storage.
func (l *Lifecycle) MarshalState() ([]byte, error) {
	l.mu.Lock()
	st := state{Version: stateVersion, Callees: make([]stateCallee, 0, len(l.callees))}
	for id, c := range l.callees {
		sc := stateCallee{ID: id, First: c.first.UnixNano(), Enforced: c.enforced, Version: c.version}
		if !c.relearnUntil.IsZero() {
			sc.RelearnFrom, sc.RelearnUntil = c.relearnFrom.UnixNano(), c.relearnUntil.UnixNano()
		}
		st.Callees = append(st.Callees, sc)
	}
	l.mu.Unlock()
	slices.SortFunc(st.Callees, func(a, b stateCallee) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(st)
}

// ErrStateVersion is the error of a callee state in an encoding this
// version cannot read: one written by a newer collector.
var ErrStateVersion = errors.New("callee state version is not supported")

// RestoreState adds the callees of an encoded state. A callee known both
// here and in the state keeps the earlier start, and stays enforced if
// either says so: restoring never opens access.
func (l *Lifecycle) RestoreState(data []byte) (int, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("decoding callee state: %w", err)
	}
	if st.Version != stateVersion {
		return 0, fmt.Errorf("%w: version %d (want %d)", ErrStateVersion, st.Version, stateVersion)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sc := range st.Callees {
		first := time.Unix(0, sc.First).UTC()
		c := l.get(sc.ID, first)
		if c == nil {
			continue
		}
		if first.Before(c.first) {
			c.first = first
		}
		c.enforced = c.enforced || sc.Enforced
		if c.version == "" {
			c.version = sc.Version
		}
		if sc.RelearnUntil != 0 && c.relearnUntil.IsZero() {
			c.relearnFrom, c.relearnUntil = time.Unix(0, sc.RelearnFrom).UTC(), time.Unix(0, sc.RelearnUntil).UTC()
		}
	}
	return len(st.Callees), nil
}
