package lifecycle

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

const (
	balances = "spiffe://example.org/ns/bank/sa/balances"
	payments = "spiffe://example.org/ns/bank/sa/payments"
	ledger   = "spiffe://example.org/ns/ledger/sa/ledger"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func pattern(t *testing.T, s string) spiffeid.Pattern {
	t.Helper()
	p, err := spiffeid.ParsePattern(s)
	require.NoError(t, err)
	return p
}

func config() Config {
	return Config{LearningPeriod: time.Hour, RelearnPeriod: 30 * time.Minute, Limit: 10}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"audit", "enforce"} {
		m, err := ParseMode(s)
		require.NoError(t, err)
		assert.Equal(t, Mode(s), m)
	}
	for _, s := range []string{"", "Audit", "deny", "enforce "} {
		_, err := ParseMode(s)
		assert.Error(t, err, "%q", s)
	}
}

// Each callee learns from its own first observation.
func TestLearningPerCallee(t *testing.T) {
	l := New(config())
	require.True(t, l.Seen(balances, t0))
	require.True(t, l.Seen(payments, t0.Add(45*time.Minute)))
	tests := []struct {
		name string
		at   time.Duration
		want map[string]Status
	}{
		{"both learning", 50 * time.Minute, map[string]Status{
			balances: {Mode: Audit, Reason: Learning, Until: t0.Add(time.Hour)},
			payments: {Mode: Audit, Reason: Learning, Until: t0.Add(105 * time.Minute)},
		}},
		{"first period over", time.Hour, map[string]Status{
			balances: {Mode: Enforce, Reason: Learned},
			payments: {Mode: Audit, Reason: Learning, Until: t0.Add(105 * time.Minute)},
		}},
		{"both over", 105 * time.Minute, map[string]Status{
			balances: {Mode: Enforce, Reason: Learned},
			payments: {Mode: Enforce, Reason: Learned},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, l.Modes(t0.Add(tt.at)))
		})
	}
}

func TestNoLearningPeriodEnforcesAtOnce(t *testing.T) {
	cfg := config()
	cfg.LearningPeriod = 0
	l := New(cfg)
	l.Seen(balances, t0)
	assert.Equal(t, Status{Mode: Enforce, Reason: Learned}, l.Modes(t0)[balances])
}

// A later observation never moves the start, earlier or later.
func TestSeenKeepsTheStart(t *testing.T) {
	l := New(config())
	require.True(t, l.Seen(balances, t0))
	require.True(t, l.Seen(balances, t0.Add(50*time.Minute)))
	require.True(t, l.Seen(balances, t0.Add(-50*time.Minute)))
	assert.Equal(t, Status{Mode: Audit, Reason: Learning, Until: t0.Add(time.Hour)}, l.Modes(t0.Add(30 * time.Minute))[balances])
	assert.Equal(t, Enforce, l.Modes(t0.Add(time.Hour))[balances].Mode)
	assert.Equal(t, 1, l.Len())
}

// Once enforced, a callee stays enforced: a clock stepped back, a restored
// older state, or an earlier start do not audit it again.
func TestEnforcedIsSticky(t *testing.T) {
	enforced := func(t *testing.T) *Lifecycle {
		l := New(config())
		l.Seen(balances, t0)
		l.Enforced([]string{balances}, t0.Add(time.Hour))
		return l
	}
	older := New(config())
	older.Seen(balances, t0.Add(-time.Minute))
	olderState, err := older.MarshalState()
	require.NoError(t, err)

	tests := []struct {
		name string
		do   func(*Lifecycle) time.Time // returns the time to decide at
	}{
		{"clock stepped back into the period", func(*Lifecycle) time.Time { return t0.Add(time.Minute) }},
		{"clock before the first observation", func(*Lifecycle) time.Time { return t0.Add(-time.Hour) }},
		{"restore of an older state", func(l *Lifecycle) time.Time {
			_, err := l.RestoreState(olderState)
			require.NoError(t, err)
			return t0.Add(time.Minute)
		}},
		{"seen again", func(l *Lifecycle) time.Time {
			l.Seen(balances, t0.Add(2*time.Hour))
			return t0.Add(2 * time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := enforced(t)
			at := tt.do(l)
			assert.Equal(t, Status{Mode: Enforce, Reason: Learned}, l.Modes(at)[balances])
		})
	}

	// Enforced also records a callee never seen, as over its period.
	l := New(config())
	l.Enforced([]string{payments}, t0)
	assert.Equal(t, Status{Mode: Enforce, Reason: Learned}, l.Modes(t0)[payments])
}

// Restoring keeps the earlier start and never un-enforces.
func TestRestoreState(t *testing.T) {
	early := New(config())
	early.Seen(balances, t0)
	early.Seen(payments, t0)
	earlyState, err := early.MarshalState()
	require.NoError(t, err)

	late := New(config())
	late.Seen(balances, t0.Add(30*time.Minute))
	late.Seen(ledger, t0.Add(30*time.Minute))
	late.Enforced([]string{ledger}, t0.Add(30*time.Minute))
	n, err := late.RestoreState(earlyState)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, map[string]Status{
		balances: {Mode: Audit, Reason: Learning, Until: t0.Add(time.Hour)},
		payments: {Mode: Audit, Reason: Learning, Until: t0.Add(time.Hour)},
		ledger:   {Mode: Enforce, Reason: Learned},
	}, late.Modes(t0.Add(45*time.Minute)))

	// The later state restored into the earlier lifecycle: the start
	// stays the earlier one, and the enforcement comes along.
	lateState, err := late.MarshalState()
	require.NoError(t, err)
	_, err = early.RestoreState(lateState)
	require.NoError(t, err)
	assert.Equal(t, late.Modes(t0.Add(45*time.Minute)), early.Modes(t0.Add(45*time.Minute)))

	// An un-enforced copy restored over an enforced callee.
	stale := New(config())
	stale.Seen(ledger, t0)
	staleState, err := stale.MarshalState()
	require.NoError(t, err)
	_, err = late.RestoreState(staleState)
	require.NoError(t, err)
	assert.Equal(t, Enforce, late.Modes(t0.Add(time.Minute))[ledger].Mode)
}

func TestStateRoundTrip(t *testing.T) {
	l := New(config())
	l.Seen(balances, t0)
	l.Seen(payments, t0.Add(10*time.Minute))
	l.Seen(ledger, t0)
	l.Enforced([]string{ledger}, t0.Add(time.Hour))
	l.Version(ledger, "v1", t0.Add(time.Hour))
	require.True(t, l.Version(ledger, "v2", t0.Add(2*time.Hour)))
	l.Version(payments, "v1", t0.Add(time.Hour))
	data, err := l.MarshalState()
	require.NoError(t, err)

	fresh := New(config())
	n, err := fresh.RestoreState(data)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for _, at := range []time.Duration{0, 30 * time.Minute, 2*time.Hour + time.Minute, 3 * time.Hour} {
		assert.Equal(t, l.Modes(t0.Add(at)), fresh.Modes(t0.Add(at)), "at %v", at)
	}
	again, err := fresh.MarshalState()
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again))
	// The restored version is the last one: announcing it again is no
	// change, another one is.
	assert.False(t, fresh.Version(payments, "v1", t0.Add(3*time.Hour)))
	assert.True(t, fresh.Version(payments, "v2", t0.Add(3*time.Hour)))
}

func TestRestoreStateErrors(t *testing.T) {
	for _, data := range []string{
		``,
		`garbage`,
		`{"version": 2, "callees": []}`,
		`{"callees": []}`,
		`{"version": 1, "callees": {}}`,
		`[1]`,
	} {
		l := New(config())
		n, err := l.RestoreState([]byte(data))
		assert.Error(t, err, "%s", data)
		assert.Zero(t, n)
		assert.Zero(t, l.Len())
	}
}

func TestRules(t *testing.T) {
	cfg := config()
	cfg.Rules = []Rule{
		{Callees: []spiffeid.Pattern{pattern(t, "spiffe://example.org/ns/bank/sa/payments")}, Mode: Enforce},
		{Callees: []spiffeid.Pattern{pattern(t, "spiffe://example.org/ns/ledger/**"), pattern(t, "spiffe://example.org/ns/bank/**")}, Mode: Audit},
	}
	l := New(cfg)
	for _, id := range []string{balances, payments, ledger} {
		l.Seen(id, t0)
	}
	l.Enforced([]string{ledger}, t0)

	tests := []struct {
		id   string
		mode Mode
		ok   bool
	}{
		{payments, Enforce, true}, // first match, though the second matches too
		{balances, Audit, true},
		{ledger, Audit, true}, // beats enforced
		{"spiffe://example.org/ns/other/sa/x", "", false},
		{"spiffe://other.org/ns/bank/sa/payments", "", false},
	}
	for _, tt := range tests {
		m, ok := l.Rule(tt.id)
		assert.Equal(t, tt.ok, ok, tt.id)
		assert.Equal(t, tt.mode, m, tt.id)
	}
	// Rules beat the learning period (payments learns, yet is enforced)
	// and enforcement (ledger was enforced, yet is audited).
	assert.Equal(t, map[string]Status{
		balances: {Mode: Audit, Reason: ByRule},
		payments: {Mode: Enforce, Reason: ByRule},
		ledger:   {Mode: Audit, Reason: ByRule},
	}, l.Modes(t0.Add(time.Minute)))
}

func TestVersion(t *testing.T) {
	enforcedAt := t0.Add(time.Hour)
	type step struct {
		version string
		at      time.Duration // after enforcedAt
		relearn bool
		// want is the callee's status right after the step.
		want Status
	}
	enforced := Status{Mode: Enforce, Reason: Learned}
	relearning := func(until time.Duration) Status {
		return Status{Mode: Audit, Reason: Relearning, Until: enforcedAt.Add(until)}
	}
	tests := []struct {
		name   string
		config func(*Config)
		setup  func(*Lifecycle)
		steps  []step
	}{
		{
			name: "first value is no change",
			steps: []step{
				{"v1", 0, false, enforced},
				{"v1", time.Minute, false, enforced},
				{"", 2 * time.Minute, false, enforced},
			},
		},
		{
			name: "change relearns once, further changes extend it",
			steps: []step{
				{"v1", 0, false, enforced},
				{"v2", time.Minute, true, relearning(31 * time.Minute)},
				{"v1", 10 * time.Minute, false, relearning(40 * time.Minute)},
				{"v3", 20 * time.Minute, false, relearning(50 * time.Minute)},
				{"v3", 49 * time.Minute, false, relearning(50 * time.Minute)},
				{"v3", 50 * time.Minute, false, enforced},
				{"v4", 60 * time.Minute, true, relearning(90 * time.Minute)},
			},
		},
		{
			name: "clock before the relearn start ends it",
			steps: []step{
				{"v1", 0, false, enforced},
				{"v2", 10 * time.Minute, true, relearning(40 * time.Minute)},
				{"v2", 5 * time.Minute, false, enforced},
				// A change then starts a new relearn.
				{"v3", 6 * time.Minute, true, relearning(36 * time.Minute)},
			},
		},
		{
			name:   "relearning off",
			config: func(c *Config) { c.RelearnPeriod = 0 },
			steps: []step{
				{"v1", 0, false, enforced},
				{"v2", time.Minute, false, enforced},
			},
		},
		{
			name:   "ruled by an operator",
			config: func(c *Config) { c.Rules = []Rule{{Callees: []spiffeid.Pattern{pattern(t, "*")}, Mode: Enforce}} },
			steps: []step{
				{"v1", 0, false, Status{Mode: Enforce, Reason: ByRule}},
				{"v2", time.Minute, false, Status{Mode: Enforce, Reason: ByRule}},
			},
		},
		{
			name:  "still learning",
			setup: func(l *Lifecycle) { l.Seen(balances, enforcedAt.Add(-time.Minute)) },
			steps: []step{
				{"v1", 0, false, Status{Mode: Audit, Reason: Learning, Until: enforcedAt.Add(59 * time.Minute)}},
				{"v2", time.Minute, false, Status{Mode: Audit, Reason: Learning, Until: enforcedAt.Add(59 * time.Minute)}},
				// The change was recorded: the same value later is none.
				{"v2", 2 * time.Hour, false, enforced},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config()
			if tt.config != nil {
				tt.config(&cfg)
			}
			l := New(cfg)
			if tt.setup != nil {
				tt.setup(l)
			} else {
				l.Seen(balances, t0)
				l.Enforced([]string{balances}, enforcedAt)
			}
			for i, s := range tt.steps {
				now := enforcedAt.Add(s.at)
				assert.Equal(t, s.relearn, l.Version(balances, s.version, now), "step %d", i)
				assert.Equal(t, s.want, l.Modes(now)[balances], "step %d", i)
			}
		})
	}
}

// A relearn survives a restart: its period is in the state.
func TestRelearnInState(t *testing.T) {
	l := New(config())
	l.Seen(balances, t0)
	l.Enforced([]string{balances}, t0)
	l.Version(balances, "v1", t0.Add(time.Hour))
	require.True(t, l.Version(balances, "v2", t0.Add(2*time.Hour)))
	data, err := l.MarshalState()
	require.NoError(t, err)
	fresh := New(config())
	_, err = fresh.RestoreState(data)
	require.NoError(t, err)
	at := t0.Add(2*time.Hour + time.Minute)
	assert.Equal(t, Status{Mode: Audit, Reason: Relearning, Until: t0.Add(150 * time.Minute)}, fresh.Modes(at)[balances])
	assert.False(t, fresh.Version(balances, "v3", at), "the relearn restored is extended, not started again")
}

func TestLimit(t *testing.T) {
	cfg := config()
	cfg.Limit = 2
	l := New(cfg)
	assert.True(t, l.Seen(balances, t0))
	assert.True(t, l.Seen(payments, t0))
	assert.False(t, l.Seen(ledger, t0))
	assert.True(t, l.Seen(balances, t0), "a known callee is still seen")
	assert.False(t, l.Version(ledger, "v1", t0))
	assert.False(t, l.Version(ledger, "v2", t0.Add(2*time.Hour)))
	l.Enforced([]string{ledger}, t0)
	assert.Equal(t, 2, l.Len())
	assert.NotContains(t, l.Modes(t0), ledger)

	other := New(Config{Limit: 10})
	other.Seen(ledger, t0)
	data, err := other.MarshalState()
	require.NoError(t, err)
	n, err := l.RestoreState(data)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 2, l.Len())
	assert.NotContains(t, l.Modes(t0), ledger)
}
