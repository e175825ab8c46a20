package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"github.com/tcpstated/tcpstated/internal/churn"
)

// The hidden sub-commands of a churn split over processes: one server or
// client worker each.
const (
	serverWorkerCommand = "churn-server"
	clientWorkerCommand = "churn-client"
)

// runSplit runs every server and every client worker in a process of its
// own: servers first (each prints a ready line), then clients for the
// duration; then servers are told to stop (their stdin closes) and report
// once they have closed every connection. The result sums them.
func runSplit(cfg churn.Config, mode string) error {
	if cfg.Mode != churn.Raw || cfg.ServerPort == 0 {
		return errors.New("--processes needs --mode raw and a --server-port")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	common := []string{"-server-port", strconv.Itoa(cfg.ServerPort), "-sources", strconv.Itoa(cfg.Sources),
		"-write", strconv.Itoa(cfg.WriteBytes), "-linger", strconv.Itoa(cfg.LingerSeconds), "-mode", mode,
		"-rate", strconv.FormatFloat(cfg.Rate, 'g', -1, 64)}
	var servers []*worker
	defer func() {
		for _, w := range servers {
			w.kill()
		}
	}()
	for range cfg.Servers {
		w, err := startWorker(exe, serverWorkerCommand, common)
		if err != nil {
			return err
		}
		servers = append(servers, w)
		if _, err := w.line(); err != nil { // ready
			return fmt.Errorf("server worker: %w", err)
		}
	}
	var clients []*worker
	for k := range cfg.Clients {
		w, err := startWorker(exe, clientWorkerCommand, append([]string{
			"-duration", cfg.Duration.String(), "-first", strconv.Itoa(k), "-stride", strconv.Itoa(cfg.Clients)}, common...))
		if err != nil {
			return err
		}
		clients = append(clients, w)
	}
	total := churn.Result{ServerPort: cfg.ServerPort, Mode: cfg.Mode, Clients: cfg.Clients, Servers: cfg.Servers}
	for _, w := range clients {
		r, err := w.result()
		if err != nil {
			return fmt.Errorf("client worker %d: %w", w.cmd.Process.Pid, err)
		}
		total.Connections += r.Connections
		total.Failed += r.Failed
		total.Seconds = max(total.Seconds, r.Seconds)
		if total.FirstError == "" {
			total.FirstError = r.FirstError
		}
		total.ClientPids = append(total.ClientPids, w.cmd.Process.Pid)
	}
	for _, w := range servers {
		w.in.Close() // stop
		r, err := w.result()
		if err != nil {
			return fmt.Errorf("server worker %d: %w", w.cmd.Process.Pid, err)
		}
		total.Accepted += r.Accepted
		total.ServerClosed += r.ServerClosed
		total.ServerResets += r.ServerResets
		total.ServerPids = append(total.ServerPids, w.cmd.Process.Pid)
	}
	if total.Seconds > 0 {
		total.Rate = float64(total.Connections) / total.Seconds
	}
	if err := printJSON(total); err != nil {
		return err
	}
	if total.ServerClosed != total.Connections {
		return fmt.Errorf("servers closed %d connections after EOF, clients completed %d", total.ServerClosed, total.Connections)
	}
	return nil
}

type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startWorker(exe, command string, args []string) (*worker, error) {
	c := exec.Command(exe, append([]string{command}, args...)...)
	c.Stderr = os.Stderr
	// A worker must not outlive a parent that was killed outright.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	in, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return &worker{cmd: c, in: in, out: bufio.NewReader(out)}, nil
}

// line reads one line from the worker; one that fails exits without it,
// its error on stderr.
func (w *worker) line() ([]byte, error) {
	b, err := w.out.ReadBytes('\n')
	if err != nil {
		w.cmd.Wait()
		return nil, fmt.Errorf("exited (%v) without its line", w.cmd.ProcessState)
	}
	return b, nil
}

// result reads the worker's result line and waits for it to exit.
func (w *worker) result() (churn.Result, error) {
	var r churn.Result
	b, err := w.line()
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if werr := w.cmd.Wait(); err == nil {
		err = werr
	}
	return r, err
}

func (w *worker) kill() {
	if w.cmd.ProcessState == nil {
		w.cmd.Process.Kill()
		w.cmd.Wait()
	}
}

// workerFlags are the flags both kinds of worker take.
func workerFlags(name string, args []string, extra func(*flag.FlagSet, *churn.Config)) churn.Config {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	cfg := churn.Config{Clients: 1, Servers: 1, Duration: 1}
	fs.IntVar(&cfg.ServerPort, "server-port", 0, "")
	fs.IntVar(&cfg.Sources, "sources", 1<<16, "")
	fs.IntVar(&cfg.WriteBytes, "write", 0, "")
	fs.IntVar(&cfg.LingerSeconds, "linger", 0, "")
	fs.Float64Var(&cfg.Rate, "rate", 0, "")
	mode := fs.String("mode", string(churn.Raw), "")
	if extra != nil {
		extra(fs, &cfg)
	}
	fs.Parse(args)
	cfg.Mode = churn.Mode(*mode)
	return cfg
}

// runServerWorker serves until its stdin closes, then prints its result.
func runServerWorker(args []string) error {
	cfg := workerFlags(serverWorkerCommand, args, nil)
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 2))
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	r, err := churn.Serve(cfg, func(int) { fmt.Println(`{"ready":true}`) }, stop)
	if perr := printJSON(r); perr != nil && err == nil {
		err = perr
	}
	return err
}

// runClientWorker runs one client worker for its duration, then prints
// its result.
func runClientWorker(args []string) error {
	var first, stride int
	cfg := workerFlags(clientWorkerCommand, args, func(fs *flag.FlagSet, cfg *churn.Config) {
		fs.DurationVar(&cfg.Duration, "duration", 0, "")
		fs.IntVar(&first, "first", 0, "")
		fs.IntVar(&stride, "stride", 1, "")
	})
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 2))
	r, err := churn.Clients(cfg, first, stride)
	if perr := printJSON(r); perr != nil && err == nil {
		err = perr
	}
	return err
}
