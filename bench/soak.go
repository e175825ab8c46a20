package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// soakConfig is the long run at moderate churn: does anything grow?
type soakConfig struct {
	duration time.Duration
	every    time.Duration // between samples (and event-file rotations)
	rate     float64       // connections per second
	port     int
}

// soakSample is the daemon seen once during the soak.
type soakSample struct {
	at         time.Duration // since the churn started
	rssKiB     int64
	cpuSeconds float64
	metrics    map[string]float64 // families summed over their labels
	lines      int64              // churn events in the file rotated at this sample
}

type soakResult struct {
	cfg     soakConfig
	churn   churnResult
	samples []soakSample
	events  int64 // churn transitions in all the files
	stopped tracerRun
	err     error
}

// soakMetrics are the families each sample keeps: the tables, their
// bounds' counters, and every loss.
var soakMetrics = []string{
	"tcpstated_socket_table_entries",
	"tcpstated_socket_table_full_total",
	"tcpstated_sink_queue_length",
	"tcpstated_sink_dropped_total",
	"tcpstated_ringbuf_lost_total",
	"tcpstated_kernel_recursion_misses_total",
	"tcpstated_timewait_table_full_total",
	"tcpstated_timewait_watch_full_total",
	"tcpstated_kernel_synrecv_held_full_total",
	"tcpstated_accept_unnamed_total",
	"tcpstated_comm_labels",
	"tcpstated_events_total",
}

// runSoak runs one tcpstated under paced churn for cfg.duration, sampling
// its memory and tables; the event file is rotated (rename, SIGHUP) at
// every sample, as logrotate would, so the disk holds one window at most.
func runSoak(churnBin, daemonBin, dir string, cfg soakConfig, sig <-chan os.Signal) soakResult {
	r := soakResult{cfg: cfg}
	d := &daemonTracer{bin: daemonBin}
	if r.err = d.start(dir); r.err != nil {
		return r
	}
	addr, err := readyAddr(filepath.Join(dir, "ready"))
	if err != nil {
		d.stop(0)
		r.err = err
		return r
	}
	churn := exec.Command(churnBin, "churn", "--duration", cfg.duration.String(), "--clients", "2", "--servers", "1",
		"--server-port", strconv.Itoa(cfg.port), "--rate", strconv.FormatFloat(cfg.rate, 'g', -1, 64))
	out, err := churn.StdoutPipe()
	churn.Stderr = os.Stderr
	churn.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err == nil {
		err = churn.Start()
	}
	if err != nil {
		d.stop(0)
		r.err = err
		return r
	}
	done := make(chan error, 1)
	go func() {
		b, _ := io.ReadAll(out)
		err := churn.Wait()
		if jerr := json.Unmarshal(lastLine(b), &r.churn); err == nil && jerr != nil {
			err = fmt.Errorf("tcpchurn: %w", jerr)
		}
		done <- err
	}()

	start := time.Now()
	tick := time.NewTicker(cfg.every)
	defer tick.Stop()
	var churnErr error
	for running := true; running; {
		select {
		case churnErr = <-done:
			running = false
		case s := <-sig:
			r.err = fmt.Errorf("interrupted by %v", s)
		case <-tick.C:
		}
		if r.err != nil {
			break
		}
		s, err := d.sample(addr, cfg.port)
		if err != nil {
			r.err = err
			break
		}
		s.at = time.Since(start)
		r.events += s.lines
		r.samples = append(r.samples, s)
		fmt.Fprintf(os.Stderr, "bench: soak %s: RSS %.1f MiB, %0.f sockets tracked, %d events in the window\n",
			s.at.Round(time.Second), float64(s.rssKiB)/1024, s.metrics["tcpstated_socket_table_entries"], s.lines)
	}
	if r.err != nil {
		churn.Process.Kill()
		<-done
	}
	time.Sleep(tracerSettle)
	r.stopped, err = d.stop(cfg.port) // counts what the last file holds
	r.events += r.stopped.churn.total()
	if tr, cerr := countFile(d.eventsPath()+".closed", cfg.port, countDaemonEvents); cerr == nil {
		r.events += tr.total()
	}
	if r.err == nil {
		r.err = churnErr
	}
	if r.err == nil {
		r.err = err
	}
	return r
}

// sample reads the daemon's memory and metrics, rotates its event file
// and counts the churn's events in the window that the rotation closed.
func (d *daemonTracer) sample(addr string, port int) (soakSample, error) {
	var s soakSample
	var err error
	if s.rssKiB, err = procStatusKiB(d.p.pid(), "VmRSS"); err != nil {
		return s, err
	}
	s.cpuSeconds, _ = procCPUSeconds(d.p.pid())
	if s.metrics, err = scrape(addr, soakMetrics); err != nil {
		return s, err
	}
	// The renamed file may still take the events the daemon wrote before
	// it reopened: it is counted at the next rotation.
	closed := d.eventsPath() + ".closed"
	if _, err := os.Stat(closed); err == nil {
		tr, err := countFile(closed, port, countDaemonEvents)
		if err != nil {
			return s, err
		}
		s.lines = tr.total()
		os.Remove(closed)
	}
	if err := os.Rename(d.eventsPath(), closed); err != nil {
		return s, err
	}
	return s, d.p.cmd.Process.Signal(syscall.SIGHUP)
}

// readyAddr is the metrics address in the daemon's --ready-file.
func readyAddr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var ready struct {
		Listen string `json:"listen"`
	}
	if err := json.Unmarshal(b, &ready); err != nil || ready.Listen == "" {
		return "", fmt.Errorf("no metrics address in %s: %q", path, b)
	}
	return ready.Listen, nil
}

// scrape reads the daemon's /metrics and sums each of the families
// asked for over its labels.
func scrape(addr string, families []string) (map[string]float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	want := map[string]bool{}
	for _, f := range families {
		want[f] = true
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = line[:i]
			if j := strings.LastIndexByte(line, '}'); j > i {
				rest = strings.TrimSpace(line[j+1:])
			}
		}
		if !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest + " 0")[0], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %q: %v", line, err)
		}
		got[name] += v
	}
	return got, sc.Err()
}

// lastLine is the last line of a command's output: its result.
func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}

// runSoakBench is make bench-soak: the soak alone, its section written
// into cfg.out; an error when anything grew or was lost.
func runSoakBench(cfg config, tmp string, sig <-chan os.Signal) error {
	daemonBin, err := filepath.Abs(cfg.daemon)
	if err == nil {
		_, err = os.Stat(daemonBin)
	}
	if err != nil {
		return fmt.Errorf("tcpstated binary: %w (make build, or --daemon PATH)", err)
	}
	if cfg.soak.rate <= 0 || cfg.soak.every <= 0 || cfg.soak.every > cfg.soak.duration {
		return fmt.Errorf("--soak-rate must be positive and --soak-every within --soak")
	}
	m := describeMachine(daemonBin, "")
	dir := filepath.Join(tmp, "soak")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: soak of %s at %.0f connections/s, a sample every %s\n", cfg.soak.duration, cfg.soak.rate, cfg.soak.every)
	r := runSoak(cfg.churnBin, daemonBin, dir, cfg.soak, sig)
	var md strings.Builder
	r.markdown(&md, m)
	os.Stdout.WriteString(md.String())
	if cfg.out != "" {
		if err := writeDoc(cfg.out, "soak", md.String()); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	if !r.passed() {
		return errTargetsMissed
	}
	return nil
}
