package main

import (
	"fmt"
	"runtime"

	"github.com/tcpstated/tcpstated/internal/buildinfo"
)

func versionString() string {
	return fmt.Sprintf("tcpstated %s (commit %s, %s, %s/%s)", buildinfo.Version(), buildinfo.Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
