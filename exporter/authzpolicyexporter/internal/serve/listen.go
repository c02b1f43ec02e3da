package serve

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.uber.org/zap"
)

// Listener runs a Server as a collector HTTP server: its endpoint, TLS,
// auth and the other settings of confighttp.
type Listener struct {
	srv    *http.Server
	done   sync.WaitGroup
	s      *Server
	logger *zap.Logger
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
	l := &Listener{srv: srv, s: s, logger: set.Logger}
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

// shutdownGrace bounds the wait for responses being written at shutdown:
// a client that does not read its bundle must not hold the collector.
const shutdownGrace = 2 * time.Second

// Shutdown releases the held requests, lets the responses being written
// finish for at most shutdownGrace, then closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.s.Close()
	ctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	var err error
	if l.srv.Shutdown(ctx) != nil {
		l.logger.Warn("Closing the bundle server's connections whose responses were not read in time")
		err = l.srv.Close()
	}
	l.done.Wait()
	return err
}
