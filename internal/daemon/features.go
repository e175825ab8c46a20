package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/netns"
)

// maxNamespaces bounds the start-up walk: any user may create network
// namespaces (in a user namespace), and each costs a thread and a walk.
const maxNamespaces = 4096

// logFeatures says once, at start, what runs and what each missing
// feature costs.
func (d *Daemon) logFeatures() {
	var on []string
	for _, f := range d.tracer.Features() {
		switch f.State {
		case events.FeatureOn:
			on = append(on, string(f.Name))
		case events.FeatureDisabled:
			d.log.Info().Str("feature", string(f.Name)).Str("loses", f.Loses).Msg("feature disabled")
		case events.FeatureUnsupported:
			d.log.Info().Str("feature", string(f.Name)).Str("reason", f.Reason).Str("loses", f.Loses).Msg("feature not in this kernel")
		default:
			d.log.Warn().Str("feature", string(f.Name)).Str("program", f.Program).Str("reason", f.Reason).
				Str("loses", f.Loses).Msg("the kernel refused a feature; tracing goes on without it")
		}
	}
	d.log.Info().Strs("features", on).Msg("features running")
}

// SnapshotCoverage is the network namespaces the start-up snapshot covered.
type SnapshotCoverage struct {
	Walked int `json:"netns_walked"`
	// Missed: namespaces not walked (not entered, past the limit): their
	// sockets from before the start appear at their next state change.
	Missed int    `json:"netns_missed"`
	Why    string `json:"why,omitempty"`
}

// snapshot adds the sockets that exist now, in every network namespace:
// the iterator sees only the one it is opened in.
func (d *Daemon) snapshot() {
	if !d.tracer.Enabled(events.FeatureSnapshot) {
		return
	}
	start := time.Now()
	found, err := netns.List(maxNamespaces)
	var why []string
	if err != nil {
		// The daemon's own namespace, and whatever else was found, are
		// walked all the same.
		d.log.Error().Err(err).Msg("listing network namespaces: the start-up snapshot may miss some")
		why = append(why, err.Error())
	}
	if found.LeftOut > 0 {
		why = append(why, fmt.Sprintf("%d past the limit of %d", found.LeftOut, maxNamespaces))
	}
	if found.Hidden > 0 {
		// Most are likely in a namespace that was walked: not counted
		// as missed, but said.
		d.log.Warn().Int("processes", found.Hidden).
			Msg("the network namespace of some processes cannot be read (permission denied: other users' processes need CAP_SYS_PTRACE): the start-up snapshot may miss the namespaces only they are in")
	}
	n, denied := 0, 0
	followTW := d.tracer.Enabled(events.FeatureTimeWait)
	var firstErr error
	for _, ns := range found.NS {
		err := d.tracer.Sockets(ns, func(ev *events.Event) {
			// Without the timewait feature nothing would end a TIME_WAIT
			// from before the start: it is not shown at all.
			if ev.Flags&events.FlagTimeWait != 0 && !followTW {
				return
			}
			d.trk.Apply(ev, d.write)
			n++
		})
		// Changes of sockets not walked yet win over their snapshot
		// rows (the tracker keeps the row tracing made).
		d.drainRing()
		switch {
		case err == nil:
			d.snap.Walked++
		case errors.Is(err, netns.ErrGone):
			// Its last process exited during the walk: nothing left.
		case errors.Is(err, os.ErrPermission):
			denied++
		default:
			d.snap.Missed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if denied > 0 {
		d.snap.Missed += denied
		why = append(why, fmt.Sprintf("%d not entered (entering a network namespace needs CAP_SYS_ADMIN)", denied))
	}
	if firstErr != nil {
		why = append(why, firstErr.Error())
	}
	d.snap.Missed += found.LeftOut
	if len(why) > 0 {
		d.snap.Why = strings.Join(why, "; ")
		d.log.Warn().Int("netns_walked", d.snap.Walked).Int("netns_missed", d.snap.Missed).Str("why", d.snap.Why).
			Msg("start-up snapshot missed network namespaces: their sockets from before the start appear at their next state change")
	}
	d.log.Info().Int("sockets", n).Int("netns", d.snap.Walked).Dur("took", time.Since(start)).Msg("found existing TCP sockets")
}
