//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EImage opens the OCI archive `make image` writes and checks, for
// linux/amd64 and linux/arm64, the image configuration and the files the
// collector needs; the host's binary is run from the image's file system
// with the image's own config.
func TestE2EImage(t *testing.T) {
	archive := binary(t, "OTELCOL_AUTHZ_IMAGE")
	images := platformImages(t, openArchive(t, archive))
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, keys(images))

	dropIn, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "collector-config.yaml"))
	require.NoError(t, err)
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			img := images["linux/"+arch]
			cf, err := img.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, "linux", cf.OS)
			assert.Equal(t, arch, cf.Architecture)
			assert.Equal(t, []string{"/otelcol-authz"}, cf.Config.Entrypoint)
			assert.Equal(t, []string{"--config", "/etc/otelcol-authz/config.yaml"}, cf.Config.Cmd)
			assert.Equal(t, "10001:10001", cf.Config.User)
			assert.ElementsMatch(t, []string{"4317/tcp", "4318/tcp", "13133/tcp", "8888/tcp", "8090/tcp"},
				keys(cf.Config.ExposedPorts))

			root := t.TempDir()
			fs := extract(t, img, root,
				"otelcol-authz", "etc/ssl/certs/ca-certificates.crt", "etc/otelcol-authz/config.yaml",
				"etc/passwd", "etc/group", "var/lib/otelcol-authz")

			ca := fs["etc/ssl/certs/ca-certificates.crt"]
			require.NotNil(t, ca, "no CA bundle")
			pem := readFile(t, root, ca)
			require.NotEmpty(t, pem)
			assert.True(t, x509.NewCertPool().AppendCertsFromPEM(pem), "the CA bundle holds no certificate")

			cfg := fs["etc/otelcol-authz/config.yaml"]
			require.NotNil(t, cfg, "no config")
			assert.Equal(t, string(dropIn), string(readFile(t, root, cfg)), "the image's config is not deploy/collector-config.yaml")

			for _, f := range []string{"etc/passwd", "etc/group"} {
				require.NotNil(t, fs[f], "no /%s", f)
				assert.Contains(t, "\n"+string(readFile(t, root, fs[f])), "\notelcol-authz:x:10001:", "/%s", f)
			}

			state := fs["var/lib/otelcol-authz"]
			require.NotNil(t, state, "no /var/lib/otelcol-authz")
			assert.Equal(t, byte(tar.TypeDir), state.Typeflag)
			assert.Equal(t, []int{10001, 10001}, []int{state.Uid, state.Gid}, "owner of /var/lib/otelcol-authz")

			bin := fs["otelcol-authz"]
			require.NotNil(t, bin, "no /otelcol-authz")
			assert.NotZero(t, bin.Mode&0o111, "/otelcol-authz is not executable")
			binPath := filepath.Join(root, "otelcol-authz")
			f, err := elf.Open(binPath)
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, machine[arch], f.Machine)
			for _, p := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, p.Type, "/otelcol-authz is dynamically linked")
			}

			if arch != runtime.GOARCH {
				return
			}
			out, err := exec.Command(binPath, "--version").CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "otelcol-authz version 0.1.0")
			t.Logf("%s", bytes.TrimSpace(out))
			out, err = exec.Command(binPath, "validate", "--config", filepath.Join(root, cfg.Name)).CombinedOutput()
			require.NoError(t, err, "validate the image's config:\n%s", out)
		})
	}
}

// openArchive unpacks an oci-archive (a tar of an OCI image layout).
func openArchive(t *testing.T, archive string) v1.ImageIndex {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	dir := t.TempDir()
	eachEntry(t, f, func(h *tar.Header, r io.Reader) {
		require.True(t, filepath.IsLocal(h.Name), "archive entry %q", h.Name)
		dst := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(dst, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			writeFile(t, dst, r, 0o644)
		}
	})
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	return idx
}

// platformImages collects the images below idx, nested indexes included,
// by their descriptor's os/architecture.
func platformImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	images := map[string]v1.Image{}
	for _, d := range m.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			require.NoError(t, err)
			for p, img := range platformImages(t, child) {
				require.NotContains(t, images, p, "two images for %s", p)
				images[p] = img
			}
		case d.MediaType.IsImage():
			require.NotNil(t, d.Platform, "image %s has no platform", d.Digest)
			p := d.Platform.OS + "/" + d.Platform.Architecture
			require.NotContains(t, images, p, "two images for %s", p)
			img, err := idx.Image(d.Digest)
			require.NoError(t, err)
			images[p] = img
		}
	}
	return images
}

// extract writes the named paths of the image's flattened file system below
// root and returns their headers.
func extract(t *testing.T, img v1.Image, root string, names ...string) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := map[string]*tar.Header{}
	eachEntry(t, rc, func(h *tar.Header, r io.Reader) {
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if !want[name] {
			return
		}
		h.Name = name
		found[name] = h
		if h.Typeflag == tar.TypeReg {
			dst := filepath.Join(root, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			writeFile(t, dst, r, 0o755)
		}
	})
	return found
}

// eachEntry calls fn with every entry of the tar stream r and its contents.
func eachEntry(t *testing.T, r io.Reader, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		fn(h, tr)
	}
}

func writeFile(t *testing.T, dst string, r io.Reader, mode os.FileMode) {
	t.Helper()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(w, r)
	require.NoError(t, err)
	require.NoError(t, w.Close())
}

func readFile(t *testing.T, root string, h *tar.Header) []byte {
	t.Helper()
	require.Equal(t, byte(tar.TypeReg), h.Typeflag, "/%s is not a regular file", h.Name)
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(h.Name)))
	require.NoError(t, err)
	return b
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
