/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What every program shares: the kernel headers, the in-kernel filters,
 * the ring buffer and its records, the loss counters.
 */
#ifndef TCPSTATED_COMMON_BPF_H
#define TCPSTATED_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpstated.h"

#define AF_INET 2
#define AF_INET6 10
#define EEXIST 17 /* errno, for bpf_map_update_elem with BPF_NOEXIST */

/* Set from user space before load. */
const volatile __u32 filter_pid = 0;
const volatile __u16 filter_port = 0;
const volatile __u8 filter_family = 0;  /* 0, 4 or 6 */
const volatile __u32 filter_states = 0; /* bit per TCP state, either side */
const volatile __u64 wakeup_bytes = 1;  /* wake the reader past this fill */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized from user space */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Put the shared types in BTF, for bpf2go -type to generate in Go. */
const struct record *unused_record __attribute__((unused));
const enum record_kind *unused_kind __attribute__((unused));
const enum owner_source *unused_owner __attribute__((unused));
const enum record_flag *unused_flag __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum reset_direction *unused_reset __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		(*c)++;
}

/* --port and --family, which every record can be held to. */
static __always_inline bool filtered_addr(__u16 sport, __u16 dport, __u8 family)
{
	if (filter_port && sport != filter_port && dport != filter_port)
		return true;
	return filter_family && family != filter_family;
}

static __always_inline bool filtered(__u32 pid, __u16 sport, __u16 dport,
				     __u8 family, __u8 olds, __u8 news)
{
	/* An unknown owner passes: user space may know it. */
	if (filter_pid && pid && pid != filter_pid)
		return true;
	if (filtered_addr(sport, dport, family))
		return true;
	if (filter_states &&
	    !(filter_states & ((1U << (olds & 31)) | (1U << (news & 31)))))
		return true;
	return false;
}

static __always_inline struct record *reserve(void)
{
	struct record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r)
		count(COUNTER_LOST);
	return r;
}

/* Bytes a record takes in the ring: the record and the ring's 8-byte
 * header, 8-byte aligned. */
#define RECORD_SLOT ((sizeof(struct record) + 8 + 7) & ~7ULL)

/* Wake the reader only when the queue crosses a multiple of wakeup_bytes:
 * a wakeup is an IPI (a VM exit under a hypervisor), a wakeup per record
 * costs a quarter of the connection rate, and waking on every record once
 * the reader is behind made it fall further behind. Below the first
 * multiple the reader comes on its own poll interval. */
static __always_inline void submit(struct record *r)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	if (avail >= wakeup_bytes &&
	    avail / wakeup_bytes != (avail - RECORD_SLOT) / wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(r, flags);
	count(COUNTER_RECORDS);
}

static __always_inline __u8 family_of(__u16 af)
{
	return af == AF_INET ? 4 : af == AF_INET6 ? 6 : 0;
}

/* Addresses and netns from the common part, shared by every socket kind.
 * skc is a BTF pointer: plain loads, which the verifier guards, cost a
 * fraction of bpf_probe_read_kernel calls (a third of on_state's time). */
static __always_inline void fill_addrs(struct record *r,
				       const struct sock_common *skc)
{
	if (r->family == 4) {
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		__builtin_memset(r->daddr, 0, sizeof(r->daddr));
		*(__u32 *)r->saddr = skc->skc_rcv_saddr;
		*(__u32 *)r->daddr = skc->skc_daddr;
	} else {
		__u64 *s = (__u64 *)r->saddr, *d = (__u64 *)r->daddr;

		s[0] = *(__u64 *)&skc->skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		s[1] = *(__u64 *)&skc->skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		d[0] = *(__u64 *)&skc->skc_v6_daddr.in6_u.u6_addr32[0];
		d[1] = *(__u64 *)&skc->skc_v6_daddr.in6_u.u6_addr32[2];
	}
	r->netns = skc->skc_net.net->ns.inum;
}

/* What every record says: which kind, when, which socket and change. */
static __always_inline void fill_record(struct record *r, __u8 kind,
					__u64 ts, __u64 cookie, __u8 family,
					__u16 sport, __u16 dport, __u8 olds,
					__u8 news)
{
	r->kind = kind;
	r->ts_ns = ts;
	r->cookie = cookie;
	r->family = family;
	r->sport = sport;
	r->dport = dport;
	r->oldstate = olds;
	r->newstate = news;
	r->bytes_acked = 0;
	r->bytes_received = 0;
	r->srtt_us = 0;
	r->total_retrans = 0;
}

static __always_inline void fill_context(struct record *r)
{
	r->cpu_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->cpu_comm, sizeof(r->cpu_comm));
	r->cpu = bpf_get_smp_processor_id();
}

#endif
