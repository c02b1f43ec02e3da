package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
)

func sampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "spans", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no sample files found in testdata/spans")
	}
	return files
}

func TestSampleFilesParse(t *testing.T) {
	for _, name := range sampleFiles(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			td, err := loadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if n := td.SpanCount(); n < 30 || n > 60 {
				t.Errorf("got %d spans, want between 30 and 60", n)
			}
			forEachSpan(td, func(s ptrace.Span) {
				if s.StartTimestamp() == 0 || s.EndTimestamp() < s.StartTimestamp() {
					t.Errorf("span %s: bad timestamps %d..%d", s.SpanID(), s.StartTimestamp(), s.EndTimestamp())
				}
				if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() {
					t.Errorf("span %q has an empty trace or span ID", s.Name())
				}
			})
		})
	}
}

// timestamps returns the start and end timestamps of all spans, in order.
func timestamps(td ptrace.Traces) []pcommon.Timestamp {
	var ts []pcommon.Timestamp
	forEachSpan(td, func(s ptrace.Span) {
		ts = append(ts, s.StartTimestamp(), s.EndTimestamp())
	})
	return ts
}

func TestShiftToNow(t *testing.T) {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	add := func(start, end pcommon.Timestamp) ptrace.Span {
		s := spans.AppendEmpty()
		s.SetStartTimestamp(start)
		s.SetEndTimestamp(end)
		return s
	}
	add(1_000, 5_000)
	last := add(3_000, 9_000)
	last.Events().AppendEmpty().SetTimestamp(4_000)
	add(2_000, 0) // unset end stays unset

	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	delta := shiftToNow(td, now)

	base := pcommon.NewTimestampFromTime(now) - 9_000
	if got, want := delta, now.Sub(time.Unix(0, 9_000)); got != want {
		t.Errorf("delta = %v, want %v", got, want)
	}
	want := []pcommon.Timestamp{base + 1_000, base + 5_000, base + 3_000, base + 9_000, base + 2_000, 0}
	got := timestamps(td)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("timestamp %d = %d, want %d", i, got[i], want[i])
		}
	}
	if ev := last.Events().At(0).Timestamp(); ev != base+4_000 {
		t.Errorf("event timestamp = %d, want %d", ev, base+4_000)
	}
}

func TestShiftToNowKeepsOffsetsInSampleFiles(t *testing.T) {
	now := time.Now()
	for _, name := range sampleFiles(t) {
		orig, err := loadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		td, _ := loadFile(name)
		delta := shiftToNow(td, now)
		before, after := timestamps(orig), timestamps(td)
		var latest pcommon.Timestamp
		for i := range before {
			if got := after[i].AsTime().Sub(before[i].AsTime()); got != delta {
				t.Fatalf("%s: timestamp %d moved by %v, want %v", name, i, got, delta)
			}
			latest = max(latest, after[i])
		}
		if !latest.AsTime().Equal(now) {
			t.Errorf("%s: latest timestamp %v, want %v", name, latest.AsTime(), now)
		}
	}
}

func TestShiftToNowEmpty(t *testing.T) {
	if d := shiftToNow(ptrace.NewTraces(), time.Now()); d != 0 {
		t.Errorf("shift of empty traces = %v, want 0", d)
	}
}

type fakeReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans int
	ends  []time.Time
}

func (f *fakeReceiver) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spans += req.Traces().SpanCount()
	forEachSpan(req.Traces(), func(s ptrace.Span) { f.ends = append(f.ends, s.EndTimestamp().AsTime()) })
	return ptraceotlp.NewExportResponse(), nil
}

func TestRunSendsSampleFiles(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on loopback: %v", err)
	}
	srv := grpc.NewServer()
	recv := &fakeReceiver{}
	ptraceotlp.RegisterGRPCServer(srv, recv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	files := sampleFiles(t)
	want := 0
	for _, name := range files {
		td, err := loadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		want += td.SpanCount()
	}

	var out bytes.Buffer
	start := time.Now()
	cfg := config{endpoint: lis.Addr().String(), now: true, timeout: 5 * time.Second, repeat: 2}
	if err := run(context.Background(), cfg, files, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2*len(files) || !strings.HasPrefix(lines[0], "sent ") {
		t.Errorf("unexpected output:\n%s", out.String())
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.spans != 2*want {
		t.Errorf("receiver got %d spans, want %d", recv.spans, 2*want)
	}
	for _, end := range recv.ends {
		if end.Before(start.Add(-time.Hour)) || end.After(time.Now()) {
			t.Fatalf("span end %v was not shifted to now", end)
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"resourceSpans": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{endpoint: "127.0.0.1:1", timeout: time.Second, repeat: 1}
	if err := run(context.Background(), cfg, []string{bad}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("run with a malformed file: err = %v, want a parse error naming the file", err)
	}
	cfg.repeat = 0
	if err := run(context.Background(), cfg, nil, &bytes.Buffer{}); err == nil {
		t.Error("run with -repeat 0 succeeded, want an error")
	}
}
