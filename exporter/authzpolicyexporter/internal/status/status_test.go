package status

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func value(raw any) pcommon.Value {
	v := pcommon.NewValueEmpty()
	if err := v.FromRaw(raw); err != nil {
		panic(err)
	}
	return v
}

func TestHTTP(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(200), 200, true},
		{int64(403), 403, true},
		{"404", 404, true},
		{403.0, 403, true},
		{int64(100), 100, true},
		{int64(599), 599, true},
		{int64(99), 0, false},
		{int64(600), 0, false},
		{int64(1403), 0, false},
		{int64(-403), 0, false},
		{int64(0), 0, false},
		{403.5, 0, false},
		{404.9, 0, false},
		{math.NaN(), 0, false},
		{math.Inf(1), 0, false},
		{math.Inf(-1), 0, false},
		{1e300, 0, false},
		{"403 Forbidden", 0, false},
		{" 403", 0, false},
		{"+403", 0, false},
		{"403.0", 0, false},
		{"", 0, false},
		{true, 0, false},
		{[]byte("403"), 0, false},
		{nil, 0, false},
	} {
		got, ok := HTTP(value(tt.in))
		assert.Equal(t, tt.ok, ok, "%v", tt.in)
		if tt.ok {
			assert.Equal(t, tt.want, got, "%v", tt.in)
		}
	}
}

func TestGRPC(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(0), 0, true},
		{int64(7), 7, true},
		{int64(16), 16, true},
		{7.0, 7, true},
		{"7", 7, true},
		{"16", 16, true},
		{"PERMISSION_DENIED", 7, true},
		{"permission_denied", 7, true},
		{"UNAUTHENTICATED", 16, true},
		{"UNIMPLEMENTED", 12, true},
		{"OK", 0, true},
		{"canceled", 1, true},
		{"CANCELLED", 1, true},
		{int64(17), 0, false},
		{int64(-1), 0, false},
		{7.5, 0, false},
		{math.NaN(), 0, false},
		{"PERMISSION DENIED", 0, false},
		{"007", 0, false},
		{"+7", 0, false},
		{"", 0, false},
		{"17", 0, false},
		{true, 0, false},
	} {
		got, ok := GRPC(value(tt.in))
		assert.Equal(t, tt.ok, ok, "%v", tt.in)
		if tt.ok {
			assert.Equal(t, tt.want, got, "%v", tt.in)
		}
	}
}

// FuzzStatus: no input panics, and whatever is accepted is in range.
func FuzzStatus(f *testing.F) {
	for _, s := range []string{"200", "403", "7", "PERMISSION_DENIED", "NaN", "1e3", "-0", " 1"} {
		f.Add(s, 0.0, int64(0))
	}
	f.Add("", math.NaN(), int64(-1))
	f.Fuzz(func(t *testing.T, s string, d float64, i int64) {
		for _, v := range []pcommon.Value{value(s), value(d), value(i)} {
			if c, ok := HTTP(v); ok && (c < 100 || c > 599) {
				t.Fatalf("HTTP(%v) = %d", v.AsRaw(), c)
			}
			if c, ok := GRPC(v); ok && (c < 0 || c > MaxGRPC) {
				t.Fatalf("GRPC(%v) = %d", v.AsRaw(), c)
			}
		}
		if c, ok := GRPCText(s); ok && (c < 0 || c > MaxGRPC) {
			t.Fatalf("GRPCText(%q) = %d", s, c)
		}
	})
}
