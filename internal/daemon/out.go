package daemon

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/output"
)

func newJSONOut(w zerolog.LevelWriter, wall func(uint64) time.Time) *output.JSON {
	return output.NewJSON(w, wall)
}

func newTextOut(w zerolog.LevelWriter, wall func(uint64) time.Time) *output.Text {
	return output.NewText(w, wall)
}
