package events

// The BPF object is generated and committed; `make generate` refreshes it
// and CI fails when the committed copy drifts from the C source.
//go:generate go tool bpf2go -tags linux -target amd64 -type record -type record_kind -type owner_source -type record_flag -type counter -type reset_direction -output-stem tcpstated tcpstated ../../bpf/tcpstated.bpf.c -- -I../../bpf -I../../bpf/headers -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target amd64 -output-stem ksym ksym ../../bpf/ksym.bpf.c -- -I../../bpf -I../../bpf/headers -O2 -g -Wall -Werror
