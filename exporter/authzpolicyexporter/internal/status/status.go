// Package status reads a request's outcome from span attribute values: an
// HTTP status code, a gRPC status code. A value that does not say clearly
// what the outcome was is not a status, so that the caller can refuse to
// learn from it.
package status

import (
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// MaxGRPC is the highest gRPC status code (UNAUTHENTICATED).
const MaxGRPC = 16

// grpcNames are the gRPC status codes by name, in code order.
var grpcNames = [MaxGRPC + 1]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// HTTP returns the HTTP status code v holds: an integer from 100 to 599,
// as an int, a whole double, or a decimal string.
func HTTP(v pcommon.Value) (int64, bool) {
	c, ok := integer(v)
	return c, ok && c >= 100 && c <= 599
}

// GRPC returns the gRPC status code v holds: 0 to 16 as an int, a whole
// double or a decimal string, or a code name such as PERMISSION_DENIED (in
// any case: newer conventions put names in rpc.response.status_code, and
// Connect's error codes are the same names in lower case).
func GRPC(v pcommon.Value) (int64, bool) {
	if v.Type() == pcommon.ValueTypeStr {
		if c, ok := GRPCText(v.Str()); ok {
			return c, true
		}
		for c, name := range grpcNames {
			if strings.EqualFold(v.Str(), name) {
				return int64(c), true
			}
		}
		if strings.EqualFold(v.Str(), "canceled") { // Connect's spelling
			return 1, true
		}
		return 0, false
	}
	c, ok := integer(v)
	return c, ok && c >= 0 && c <= MaxGRPC
}

// GRPCText parses a grpc-status header: a decimal code from 0 to 16.
func GRPCText(s string) (int64, bool) {
	if s == "" || len(s) > 2 || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	c, err := strconv.ParseUint(s, 10, 8)
	return int64(c), err == nil && c <= MaxGRPC
}

// integer reads a whole number. NaN, infinities and fractions are not one:
// truncating 403.9 or NaN would turn a refusal into something else.
func integer(v pcommon.Value) (int64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeDouble:
		d := v.Double()
		if math.IsNaN(d) || math.IsInf(d, 0) || d != math.Trunc(d) || math.Abs(d) > 1<<53 {
			return 0, false
		}
		return int64(d), true
	case pcommon.ValueTypeStr:
		c, err := strconv.ParseInt(v.Str(), 10, 64)
		return c, err == nil && !strings.HasPrefix(v.Str(), "+")
	}
	return 0, false
}
