// Package churn generates loopback TCP connection churn and holds large
// numbers of established loopback connections, for tcpstated's benchmarks.
package churn

import "fmt"

// Every 127.0.0.0/8 address is local, so a client can bind any of them as
// its source. Spreading connections over many source addresses gives each
// address its own ephemeral-port space, so TIME_WAIT sockets left behind by
// the churn never exhaust the ports of one (source, destination) pair.

// sourceBase is 127.1.0.0: clear of 127.0.0.1, where servers listen.
const sourceBase = 127<<24 | 1<<16

// MaxSources is how many source addresses SourceAddr can produce: 127.1.0.0
// up to 127.254.255.255, keeping away from the /8's broadcast address.
const MaxSources = 254 << 16

// SourceAddr returns the i-th loopback source address, i modulo MaxSources.
func SourceAddr(i int) [4]byte {
	v := uint32(sourceBase + i%MaxSources)
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// FormatAddr renders an IPv4 address and port as "a.b.c.d:port".
func FormatAddr(a [4]byte, port int) string {
	return fmt.Sprintf("%d.%d.%d.%d:%d", a[0], a[1], a[2], a[3], port)
}
