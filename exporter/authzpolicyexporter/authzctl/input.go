package authzctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxInput bounds an input document: Envoy's own limits on headers keep
// real ones far smaller.
const maxInput = 16 << 20

// request is what the explanation shows of the input: the method and path
// as Envoy handed them over.
type request struct {
	Method, Path string
	// HasHeader says the request carries x-forwarded-client-cert.
	HasHeader bool
}

// parseInput reads an OPA-Envoy input document: one JSON object whose
// attributes.request.http has a string method and path, as opa-envoy-plugin
// hands the policy. Numbers stay as written.
func parseInput(data []byte) (map[string]any, request, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, request{}, fmt.Errorf("input document: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, request{}, errors.New("input document: more than one JSON value")
	}
	input, ok := doc.(map[string]any)
	if !ok {
		return nil, request{}, errors.New("input document is not a JSON object")
	}
	http, ok := at(input, "attributes", "request", "http").(map[string]any)
	if !ok {
		return nil, request{}, errors.New("input document has no object attributes.request.http")
	}
	var r request
	for name, v := range map[string]*string{"method": &r.Method, "path": &r.Path} {
		s, ok := http[name].(string)
		if !ok {
			return nil, request{}, fmt.Errorf("input document: attributes.request.http.%s is not a string", name)
		}
		*v = s
	}
	if h, ok := http["headers"]; ok {
		headers, ok := h.(map[string]any)
		if !ok {
			return nil, request{}, errors.New("input document: attributes.request.http.headers is not an object")
		}
		_, r.HasHeader = headers["x-forwarded-client-cert"]
	}
	return input, r, nil
}

func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// flagInput is the input OPA-Envoy builds for a request between callee and
// caller: by default as Envoy reports a mutual TLS handshake it terminated
// (principals), with xfcc as the x-forwarded-client-cert header Envoy adds
// for the app instead.
func flagInput(callee, caller, method, path string, xfcc bool, headers map[string]string) map[string]any {
	h := map[string]any{}
	for k, v := range headers {
		h[k] = v
	}
	attrs := map[string]any{}
	if xfcc {
		h["x-forwarded-client-cert"] = "By=" + callee + ";URI=" + caller
	} else {
		attrs["source"] = map[string]any{"principal": caller}
		attrs["destination"] = map[string]any{"principal": callee}
	}
	attrs["request"] = map[string]any{"http": map[string]any{"method": method, "path": path, "headers": h}}
	return map[string]any{"attributes": attrs}
}
