// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Finds a kernel function's address with the ksym iterator (Linux >= 6.0),
 * which needs only CAP_BPF and CAP_PERFMON, where /proc/kallsyms shows
 * zeros to a process without CAP_SYSLOG. A separate object: on older
 * kernels it fails to load and nothing else is affected.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define WANTED_LEN 17

/* The symbol to find, NUL terminated, set before load. */
const volatile char wanted[WANTED_LEN] = "tw_timer_handler";

/* Its address, once found. */
__u64 found_addr = 0;

SEC("iter/ksym")
int find_ksym(struct bpf_iter__ksym *ctx)
{
	struct kallsym_iter *k = ctx->ksym;
	char name[WANTED_LEN];

	if (!k || found_addr)
		return 0;
	if (bpf_probe_read_kernel(name, sizeof(name), k->name))
		return 0;
	for (int i = 0; i < WANTED_LEN; i++) {
		if (name[i] != wanted[i])
			return 0;
		if (!name[i])
			break;
	}
	found_addr = k->value;
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
