package opatest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/require"
)

// Tar writes files, in the order of names, as a gzipped tarball: a bundle
// assembled by hand, such as a tampered copy.
func Tar(t testing.TB, names []string, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range names {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}))
		_, err := tw.Write(files[name])
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// PackDir packs a bundle directory as the exporter publishes bundles: read
// as `opa run -b DIR` reads it and written by OPA's bundle writer, with one
// data.json.
func PackDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, bundle.NewWriter(&buf).Write(*ReadDir(t, dir)))
	return buf.Bytes()
}

// Untar returns a bundle tarball's files by name, and the names in order.
func Untar(t testing.TB, tarball []byte) (names []string, files map[string][]byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	files = map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		require.NoError(t, err)
		content, err := io.ReadAll(tr)
		require.NoError(t, err)
		names = append(names, h.Name)
		files[h.Name] = content
	}
}
