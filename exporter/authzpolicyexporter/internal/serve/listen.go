package serve

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.uber.org/zap"
)

// Listener runs a Server as a collector HTTP server: its endpoint, TLS,
// auth and the other settings of confighttp.
type Listener struct {
	srv  *http.Server
	done sync.WaitGroup
	s    *Server
}

// Listen starts serving s as cfg says. Errors of the server once started
// are reported to the host as a fatal status, as the collector's own
// receivers do.
func Listen(ctx context.Context, cfg *confighttp.ServerConfig, host component.Host, set component.TelemetrySettings, s *Server) (*Listener, error) {
	ln, err := cfg.ToListener(ctx)
	if err != nil {
		return nil, err
	}
	srv, err := cfg.ToServer(ctx, host.GetExtensions(), set, s)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	l := &Listener{srv: srv, s: s}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			set.Logger.Error("The bundle server stopped", zap.Error(err))
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	set.Logger.Info("Serving bundles to OPA", zap.String("endpoint", ln.Addr().String()))
	return l, nil
}

// Shutdown releases the held requests, then stops the server.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.s.Close()
	err := l.srv.Shutdown(ctx)
	l.done.Wait()
	return err
}
