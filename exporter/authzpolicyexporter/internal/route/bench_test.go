package route

import (
	"fmt"
	"testing"
)

// BenchmarkLearn measures the ingest hot path: one path to one route.
func BenchmarkLearn(b *testing.B) {
	l := newTestLearner(b)
	for _, c := range []struct{ name, path string }{
		{"ascii", "/api/v1/orders/12345/items"},
		{"ascii-dots", "/bank.v1.PaymentService/GetPaymentStatus"},
		{"escaped", "/files/report%202024.pdf"},
		{"non-ascii", "/files/caf%C3%A9/men%C3%BC"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Learn(c.path, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckLiteral measures the check every literal segment passes.
func BenchmarkCheckLiteral(b *testing.B) {
	for _, c := range []struct{ name, seg string }{
		{"ascii", "orders"},
		{"ascii-dots", "bank.v1.PaymentService"},
		{"escaped", "report%202024.pdf"},
		{"non-ascii", "caf%C3%A9"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := checkLiteral(c.seg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGeneralize measures the backstop on one large group.
func BenchmarkGeneralize(b *testing.B) {
	var in []Route
	for i := 0; i < 2000; i++ {
		in = append(in, keys(b, fmt.Sprintf("/users/user%d/orders/o%d", i, i), fmt.Sprintf("/users/name%c%c/profile", 'a'+i%26, 'a'+i/26%26))...)
	}
	b.ReportAllocs()
	for b.Loop() {
		Generalize(in, 10)
	}
}
