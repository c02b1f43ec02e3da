// Command sendspans replays OTLP JSON trace files to an OTLP/gRPC endpoint.
//
// It feeds the sample spans in testdata/spans to a running collector:
//
//	go run ./cmd/sendspans -endpoint 127.0.0.1:4317 testdata/spans/*.json
//
// Each file must hold a protobuf-JSON encoded ExportTraceServiceRequest
// ({"resourceSpans": [...]}). By default the span timestamps are moved so
// that the latest span of each file ends now, keeping the offsets between
// spans, so that a time-windowed consumer does not discard them as stale.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type config struct {
	endpoint string
	now      bool
	timeout  time.Duration
	repeat   int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.endpoint, "endpoint", "127.0.0.1:4317", "OTLP/gRPC endpoint as host:port")
	flag.BoolVar(&cfg.now, "now", true, "shift span timestamps so the latest span ends now, keeping relative offsets")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout for each export request")
	flag.IntVar(&cfg.repeat, "repeat", 1, "number of times each file is sent")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: sendspans [flags] FILE...")
		flag.PrintDefaults()
		os.Exit(2)
	}
	if err := run(context.Background(), cfg, flag.Args(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "sendspans: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, files []string, out io.Writer) error {
	if cfg.repeat < 1 {
		return fmt.Errorf("-repeat must be at least 1, got %d", cfg.repeat)
	}
	// Parse everything first so that a bad file aborts before anything is sent.
	traces := make([]ptrace.Traces, len(files))
	for i, name := range files {
		td, err := loadFile(name)
		if err != nil {
			return err
		}
		traces[i] = td
	}

	conn, err := grpc.NewClient(cfg.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", cfg.endpoint, err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)

	for range cfg.repeat {
		for i, td := range traces {
			if cfg.now {
				shiftToNow(td, time.Now())
			}
			if err := send(ctx, client, td, cfg.timeout); err != nil {
				return fmt.Errorf("sending %s to %s: %w", files[i], cfg.endpoint, err)
			}
			fmt.Fprintf(out, "sent %d spans from %s\n", td.SpanCount(), files[i])
		}
	}
	return nil
}

func loadFile(name string) (ptrace.Traces, error) {
	buf, err := os.ReadFile(name)
	if err != nil {
		return ptrace.Traces{}, err
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(buf)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("parsing %s: %w", name, err)
	}
	return td, nil
}

func send(ctx context.Context, client ptraceotlp.GRPCClient, td ptrace.Traces, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	if err != nil {
		return err
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 {
		return fmt.Errorf("endpoint rejected %d of %d spans: %s", ps.RejectedSpans(), td.SpanCount(), ps.ErrorMessage())
	}
	return nil
}

// shiftToNow moves the start, end and event timestamps of every span in td by
// the same amount so that the latest span start or end equals now, keeping
// relative offsets. Unset timestamps stay zero. It returns the applied shift.
func shiftToNow(td ptrace.Traces, now time.Time) time.Duration {
	var latest pcommon.Timestamp
	forEachSpan(td, func(s ptrace.Span) {
		latest = max(latest, s.StartTimestamp(), s.EndTimestamp())
	})
	if latest == 0 {
		return 0
	}
	delta := now.Sub(latest.AsTime())
	shift := func(ts pcommon.Timestamp) pcommon.Timestamp {
		if ts == 0 {
			return 0
		}
		return pcommon.NewTimestampFromTime(ts.AsTime().Add(delta))
	}
	forEachSpan(td, func(s ptrace.Span) {
		s.SetStartTimestamp(shift(s.StartTimestamp()))
		s.SetEndTimestamp(shift(s.EndTimestamp()))
		for _, ev := range s.Events().All() {
			ev.SetTimestamp(shift(ev.Timestamp()))
		}
	})
	return delta
}

func forEachSpan(td ptrace.Traces, fn func(ptrace.Span)) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				fn(s)
			}
		}
	}
}
