// Package authzctl is the authzctl command: it reads the bundles the
// authz_policy exporter publishes and explains them to people. explain
// says what OPA decides for one request, evaluating the real bundle, and
// why; diff says what one revision changes compared with another; report
// writes a bundle's review page.
//
// Main is the whole command; cmd/authzctl only calls it, because the
// packages it reads bundles through are internal to the exporter.
package authzctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Exit statuses.
const (
	exitOK       = 0 // allowed (also audited: the request passes), or no difference
	exitNo       = 1 // denied, or the revisions differ
	exitBadInput = 2 // bad flags, unreadable bundle, invalid identity, malformed input
)

const usage = `authzctl reads the OPA bundles the authz_policy exporter publishes.

Usage:
  authzctl explain [flags]   what OPA decides for one request, and why
  authzctl diff [flags] OLD NEW
                             what revision NEW changes compared with OLD
  authzctl report [flags]    the review page of a bundle, as one HTML file
  authzctl help              this text

A bundle (--bundle, OLD, NEW) is any of:
  bundle.tar.gz               a bundle file
  DIR                         an unpacked bundle (output.unpacked_dir), or a
                              directory holding bundle.tar.gz
  file://DIR, s3://BUCKET/PREFIX?region=..., gs://BUCKET/PREFIX,
  azblob://CONTAINER/PREFIX   an output URL, as output.url names it
  http://HOST:PORT[/bundle.tar.gz]
                              the collector's bundle server (serve:)

Exit status: explain 0 for ALLOW and for AUDIT would-deny (the request
passes), 1 for DENY; diff 0 when the bundles grant the same, 1 when they
differ; report 0 when written; 2 for bad input (flags, bundle, identity,
input document).

Run "authzctl COMMAND -h" for a command's flags.
`

// Main runs authzctl with args (without the program name) and returns its
// exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitBadInput
	}
	env := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "explain":
		return env.run("explain", args[1:], explainCommand)
	case "diff":
		return env.run("diff", args[1:], diffCommand)
	case "report":
		return env.run("report", args[1:], reportCommand)
	}
	fmt.Fprintf(stderr, "authzctl: unknown command %q (run \"authzctl help\")\n", args[0])
	return exitBadInput
}

// env is what a command reads from and writes to.
type env struct {
	ctx                   context.Context
	stdin                 io.Reader
	stdout, stderr        io.Writer
	flags                 *flag.FlagSet
	positional            []string
	positionalUsage       string
	commandDescription    string
	verificationKey       string
	verificationKeyID     string
	verificationAlgorithm string
}

// command declares a subcommand's flags on e.flags and returns what runs
// it once they are parsed: the exit status, or bad input.
type command func(e *env) func() (int, error)

// usageError is bad input of the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func badUsage(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func (e *env) run(name string, args []string, c command) int {
	e.flags = flag.NewFlagSet("authzctl "+name, flag.ContinueOnError)
	e.flags.SetOutput(e.stderr)
	e.flags.StringVar(&e.verificationKey, "verification-key", "", "verify signed bundles with this public key (PEM) or shared secret `file`")
	e.flags.StringVar(&e.verificationKeyID, "verification-key-id", "default", "the signing key's `id` (the exporter's signing::key_id)")
	e.flags.StringVar(&e.verificationAlgorithm, "verification-algorithm", "RS256", "the signature `algorithm`: RS256, ES256 or HS256")
	do := c(e)
	// A bad flag is one line (the flag package's); -h is the full usage,
	// on stdout.
	e.flags.Usage = func() {}
	if err := e.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "Usage: authzctl %s [flags] %s\n\n%s\n\nFlags:\n", name, e.positionalUsage, e.commandDescription)
			e.flags.SetOutput(e.stdout)
			e.flags.PrintDefaults()
			return exitOK
		}
		return exitBadInput
	}
	status, err := do()
	if err != nil {
		// One line: the first of the error's, which names what was bad.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(e.stderr, "authzctl %s: %s\n", name, msg)
		return exitBadInput
	}
	return status
}

// parse parses flags wherever they are among the positional arguments,
// so that "diff OLD NEW --json" reads as "diff --json OLD NEW"; after
// "--" everything is positional.
func (e *env) parse(args []string) error {
	for {
		if err := e.flags.Parse(args); err != nil {
			return err
		}
		rest := e.flags.Args()
		if len(rest) == 0 {
			return nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			e.positional = append(e.positional, rest...)
			return nil
		}
		e.positional = append(e.positional, rest[0])
		args = rest[1:]
	}
}

// print writes v as one indented JSON object, or as text.
func (e *env) print(asJSON bool, v any, text func(io.Writer)) error {
	if !asJSON {
		var b bytes.Buffer
		text(&b)
		_, err := io.WriteString(e.stdout, visible(b.String()))
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// visible writes the control characters (but newlines and tabs) and the
// bidirectional controls of text as escapes: values from a bundle or an
// input document must not move the cursor, retitle the terminal or make a
// line read otherwise than it is.
func visible(text string) string {
	if !strings.ContainsFunc(text, hidden) {
		return text
	}
	var b strings.Builder
	for _, r := range text {
		switch {
		case !hidden(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func hidden(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}
