package daemon

import (
	"errors"

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
		default:
			d.log.Warn().Str("feature", string(f.Name)).Str("program", f.Program).Str("reason", f.Reason).
				Str("loses", f.Loses).Msg("the kernel refused a feature; tracing goes on without it")
		}
	}
	d.log.Info().Strs("features", on).Msg("features running")
}

// snapshot adds the sockets that exist now, in every network namespace:
// the iterator sees only the one it is opened in.
func (d *Daemon) snapshot() {
	if !d.tracer.Enabled(events.FeatureSnapshot) {
		return
	}
	nss, more, err := netns.List(maxNamespaces)
	if err != nil {
		d.log.Error().Err(err).Msg("listing network namespaces: no start-up snapshot")
		return
	}
	if more > 0 {
		d.log.Warn().Int("walked", len(nss)).Int("left_out", more).
			Msg("too many network namespaces: the sockets of those left out appear at their next state change")
	}
	n, walked := 0, 0
	for _, ns := range nss {
		err := d.tracer.Sockets(ns, func(ev *events.Event) { d.trk.Apply(ev, d.write); n++ })
		switch {
		case err == nil:
			walked++
		case errors.Is(err, netns.ErrGone):
			// Its last process exited during the walk: nothing left.
		default:
			d.log.Warn().Err(err).Str("netns", ns.Path).Msg("start-up snapshot of a network namespace failed")
		}
	}
	d.log.Info().Int("sockets", n).Int("netns", walked).Msg("found existing TCP sockets")
}
