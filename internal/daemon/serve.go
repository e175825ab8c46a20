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
	"sync"
	"syscall"
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
	ln = &peerListener{Listener: ln, group: group, slots: make(chan struct{}, maxSocketConns)}
	srv := d.newServer(d.routes(true), func(ctx context.Context, c net.Conn) context.Context {
		who := caller{uid: ^uint32(0)}
		if pc, ok := c.(*peerConn); ok {
			who = pc.who
		}
		return withCaller(ctx, who)
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

// maxSocketConns bounds the API socket's connections: any local user may
// open them.
const maxSocketConns = 64

// peerListener accepts at most cap(slots) connections at once and reads
// each one's credentials as it arrives.
type peerListener struct {
	net.Listener
	group int
	slots chan struct{}
}

// peerConn is an accepted connection and who is on its other end.
type peerConn struct {
	net.Conn
	who  caller
	once sync.Once
	free func()
}

func (l *peerListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &peerConn{Conn: c, who: peerCaller(c, l.group), free: func() { <-l.slots }}, nil
}

func (c *peerConn) Close() error {
	c.once.Do(c.free)
	return c.Conn.Close()
}

// listenUnix binds path with mode 0666, replacing a socket no daemon
// answers on; anything else at path is left alone.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := safeSocketDir(filepath.Dir(path)); err != nil {
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
		// A name such as localhost resolves when bound: the policy's
		// loopback must be what was bound.
		if !(d.web.TLS && d.web.Auth) && !d.opt.AllowUnauthenticated && !ta.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("--listen %s bound %s, which is not loopback, without TLS and authentication", addr, d.addr)
		}
		d.apiAddr = ta.AddrPort()
		if self, err := netns.Self(); err == nil {
			d.apiNetns = uint32(self.Inode)
		}
	}
	// Whoever passed the listener's checks is an operator.
	var h http.Handler = d.routes(d.opt.ListenAPI)
	if d.opt.WebConfigFile != "" {
		h = d.stillSecure(h)
	}
	srv := d.newServer(h, func(ctx context.Context, _ net.Conn) context.Context {
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
	ev := d.log.Info()
	if d.web.Open {
		ev = d.log.Warn()
		paths += ", to anyone who can connect (--allow-unauthenticated-listen)"
	}
	ev.Str("listen", d.addr).Bool("tls", d.web.TLS).Bool("auth", d.web.Auth).Msg("serving " + paths)
	return nil
}

// stillSecure holds the web config to the policy it passed at start: the
// toolkit reads the file again for every request, so an edit (or a
// rotated Secret) that drops the users or the client certificates would
// otherwise open the listener to anyone. Such a request gets 503.
func (d *Daemon) stillSecure(next http.Handler) http.Handler {
	var mu sync.Mutex
	var stamp string
	ok := true
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if fi, err := os.Stat(d.opt.WebConfigFile); err != nil {
			ok = false
		} else if s := fmt.Sprint(fi.ModTime().UnixNano(), fi.Size(), fi.Sys().(*syscall.Stat_t).Ino); s != stamp {
			stamp = s
			opt := d.opt
			sec, err := readWebConfig(opt.WebConfigFile)
			ok = err == nil && (sec.TLS && sec.Auth || !d.web.TLS || !d.web.Auth)
			if !ok {
				d.log.Error().Err(err).Str("web_config", opt.WebConfigFile).
					Msg("--web.config.file no longer gives TLS and authentication: the listener answers 503 until it does again")
			}
		}
		good := ok
		mu.Unlock()
		if !good {
			http.Error(w, "tcpstated: the web configuration no longer secures this listener", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}
