package authzpolicyexporter

import (
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzObserve feeds the extractor spans built from arbitrary values and
// checks what must hold of anything it learns: the span is the callee's
// own, no status present says refused or nothing, and no identity value
// may have been cut.
func FuzzObserve(f *testing.F) {
	f.Add(int8(ptrace.SpanKindServer), istio(advDst("f"), advCaller), "/ok", int64(200), 0.0, "", `{"grpc-status":"0"}`)
	f.Add(int8(ptrace.SpanKindClient), istio(advDst("f"), advCaller), "/ok", int64(200), 0.0, "", "")
	f.Add(int8(0), istio(advDst("f"), advCaller), "/bank.Ledger/Transfer", int64(200), 7.0, "PERMISSION_DENIED", `{"grpc-status":"7"}`)
	f.Add(int8(0), strings.Repeat("a", 128), "/ok", int64(-1), math.NaN(), "7", `{"grpc-status":"0","grpc-status":"7"}`)
	f.Add(int8(1), istio(advDst("f"), advCaller)+pixieCut, "/ok", int64(1403), math.Inf(1), "ok", `{"a":"`)
	cfg := createDefaultConfig().(*Config)
	x, err := newExtractor(cfg)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, kind int8, header, path string, httpStatus int64, grpcNum float64, grpcName, respHeaders string) {
		span := ptrace.NewSpan()
		span.SetKind(ptrace.SpanKind(kind))
		a := span.Attributes()
		a.PutStr("http.request.header.x-forwarded-client-cert", header)
		a.PutStr("http.request.method", "POST")
		a.PutStr("url.path", path)
		a.PutInt("http.response.status_code", httpStatus)
		a.PutDouble("rpc.grpc.status_code", grpcNum)
		a.PutStr("rpc.response.status_code", grpcName)
		a.PutStr("http.resp_headers", respHeaders)
		b := x.newBatch(1)
		b.resource(pcommon.NewMap())
		rec, why := b.observe(span, now)
		if why != learned {
			return
		}
		if k := span.Kind(); k != ptrace.SpanKindServer && k != ptrace.SpanKindUnspecified {
			t.Fatalf("learned a %v span", k)
		}
		if httpStatus < 100 || httpStatus > 599 || x.skip[int(httpStatus)] {
			t.Fatalf("learned with HTTP status %d", httpStatus)
		}
		if grpcNum != math.Trunc(grpcNum) || grpcNum < 0 || grpcNum > 16 || x.skipGRPC[int(grpcNum)] {
			t.Fatalf("learned with gRPC status %v", grpcNum)
		}
		for i := 0; i < len(header); i++ {
			if header[i] >= 0x80 {
				t.Fatalf("learned from a header that is not ASCII")
			}
		}
		if x.cut(header) {
			t.Fatalf("learned from a header that may have been cut (%d bytes)", len(header))
		}
		if rec.Destination == "" || rec.Source == "" {
			t.Fatal("learned without identities")
		}
	})
}
