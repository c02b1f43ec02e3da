// Package jsonstream walks JSON a token at a time, so that a large
// document (a saved aggregate, a bundle's data) is decoded a piece at a
// time instead of whole.
package jsonstream

import (
	"encoding/json"
	"fmt"
)

// Expect reads the delimiter want.
func Expect(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("want %v, got %v", want, t)
	}
	return nil
}

// Fields reads an object, calling f at each key to read its value.
func Fields(dec *json.Decoder, f func(key string) error) error {
	if err := Expect(dec, json.Delim('{')); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if err := f(t.(string)); err != nil {
			return err
		}
	}
	return Expect(dec, json.Delim('}'))
}

// Skip reads a value past.
func Skip(dec *json.Decoder) error {
	var v json.RawMessage
	return dec.Decode(&v)
}
