package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/netns"
)

// serve starts the API socket and the network listener that are asked for.
func (d *Daemon) serve() error {
	if d.opt.APISocket != "" {
		if err := d.serveSocket(d.opt.APISocket); err != nil {
			return err
		}
	}
	if d.opt.Listen != "" {
		return d.serveNetwork(d.opt.Listen)
	}
	return nil
}

func (d *Daemon) newServer(h http.Handler, conn func(context.Context, net.Conn) context.Context) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ConnContext:       conn,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(zerolog.NewSlogHandler(d.log), slog.LevelWarn),
	}
	d.servers = append(d.servers, srv)
	return srv
}

// serveSocket serves everything on a unix socket any local user may
// connect to; what each one sees follows from its credentials (access.go).
func (d *Daemon) serveSocket(path string) error {
	ln, err := listenUnix(path)
	if err != nil && d.opt.APISocketIsDefault {
		d.log.Warn().Err(err).Str("socket", path).Msg("no API socket: tcpstated sockets and top cannot reach this daemon (give --api-socket a path it may create)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("--api-socket %s: %w", path, err)
	}
	d.sockPath = path
	group := d.apiGroup
	srv := d.newServer(d.routes(true), func(ctx context.Context, c net.Conn) context.Context {
		return withCaller(ctx, peerCaller(c, group))
	})
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("API socket stopped")
		}
	}()
	ev := d.log.Info().Str("socket", path)
	if group >= 0 {
		ev = ev.Int("group", group)
	}
	ev.Msg("serving /api/v1, /metrics and /healthz: everything to root and the API group, their own sockets to other users")
	return nil
}

// listenUnix binds path with mode 0666, replacing a socket no daemon
// answers on; anything else at path is left alone.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("exists and is not a socket; not replacing it")
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another tcpstated is serving it")
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveNetwork serves metrics and health (and the API with --listen-api)
// on TCP, with the TLS and authentication of --web.config.file.
func (d *Daemon) serveNetwork(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", addr, err)
	}
	d.addr = ln.Addr().String()
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		d.apiAddr = ta.AddrPort()
		if self, err := netns.Self(); err == nil {
			d.apiNetns = uint32(self.Inode)
		}
	}
	// Whoever passed the listener's checks is an operator.
	srv := d.newServer(d.routes(d.opt.ListenAPI), func(ctx context.Context, _ net.Conn) context.Context {
		return withCaller(ctx, caller{all: true})
	})
	webFile := d.opt.WebConfigFile
	noSystemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: &noSystemd, WebConfigFile: &webFile}
	logger := slog.New(zerolog.NewSlogHandler(d.log.Level(zerolog.WarnLevel)))
	go func() {
		if err := web.Serve(ln, srv, flags, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("network listener stopped")
		}
	}()
	paths := "/metrics and /healthz"
	if d.opt.ListenAPI {
		paths = "/metrics, /healthz and /api/v1"
	}
	ev := d.log.Info().Str("listen", d.addr).Bool("tls", d.web.TLS).Bool("auth", d.web.Auth)
	if !d.web.TLS || !d.web.Auth {
		if loop, _ := isLoopback(addr); !loop || d.opt.ListenAPI {
			ev = d.log.Warn().Str("listen", d.addr).Bool("tls", d.web.TLS).Bool("auth", d.web.Auth)
			paths += ", to anyone who can connect (--allow-unauthenticated-listen)"
		}
	}
	ev.Msg("serving " + paths)
	return nil
}
