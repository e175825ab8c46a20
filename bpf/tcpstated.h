/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The record layout shared by the BPF programs and the Go decoder
 * (bpf2go -type record). Change it here only; Go follows from generation.
 */
#ifndef TCPSTATED_H
#define TCPSTATED_H

#define COMM_LEN 16

/* What a record says. */
enum record_kind {
	/* A full socket changed state (sock:inet_sock_set_state). */
	RECORD_STATE = 1,
	/* A timewait socket's substate went FIN_WAIT2 -> TIME_WAIT (the
	 * peer's FIN reached an orphaned socket). No tracepoint shows it. */
	RECORD_TW_SUBSTATE = 2,
	/* A timewait socket ended: its timer expired or it was killed early. */
	RECORD_TW_END = 3,
	/* Iterator: a TCP socket that exists now (start-up snapshot). */
	RECORD_SOCKET = 4,
	/* Iterator: a process holds a TCP socket as a file descriptor. */
	RECORD_FILE = 5,
	/* An accepted child (cookie) is queued on its listener (aux: the
	 * listener's cookie), the one of several SO_REUSEPORT listeners the
	 * kernel chose. States: LISTEN -> ESTABLISHED. */
	RECORD_ACCEPT = 6,
	/* An RST sent or received (aux: enum reset_direction). States: the
	 * socket's when it happened, both; CLOSE for an RST that answers a
	 * segment no socket takes (cookie 0). */
	RECORD_RESET = 7,
};

/* Which side of an RST a RECORD_RESET shows. */
enum reset_direction {
	RESET_SENT = 1,
	RESET_RECEIVED = 2,
};

/* Why the daemon believes a process owns a socket. */
enum owner_source {
	OWNER_UNKNOWN = 0,
	OWNER_CONNECT = 1, /* it called connect() */
	OWNER_LISTEN = 2,  /* it called listen() */
	OWNER_ACCEPT = 3,  /* child of a listener: the listener's owner */
	OWNER_CLOSE = 4,   /* it called close() or shutdown() on it */
	OWNER_FILE = 5,    /* its file table holds the socket */
};

enum record_flag {
	/* The full socket was handed over to a timewait socket. */
	FLAG_TIMEWAIT = 1 << 0,
	/* RECORD_TW_END: the timewait timer expired (the normal end). */
	FLAG_EXPIRED = 1 << 1,
	/* RECORD_TW_END: ended before its timer: reuse, RST, SYN, ss -K,
	 * netns teardown. The kernel does not say which. */
	FLAG_ENDED_EARLY = 1 << 2,
	/* The substate switch was not seen when it happened: its time is
	 * derived from the timer's expiry (aux, in jiffies). */
	FLAG_SWITCH_DERIVED = 1 << 3,
	/* The timewait socket existed before tracing began. */
	FLAG_PREEXISTING = 1 << 4,
	/* RECORD_SOCKET: a timewait socket that is not followed (its share
	 * of the table was full): its end will not be seen. */
	FLAG_UNFOLLOWED = 1 << 5,
};

/* Per-CPU counters, indexes of the `counters` map. */
enum counter {
	COUNTER_RECORDS = 0,      /* records submitted to the ring buffer */
	COUNTER_LOST = 1,         /* ring buffer full: record lost */
	COUNTER_HELD_FULL = 2,    /* held_more full: a child's LISTEN -> SYN_RECV
				   * lost */
	COUNTER_TW_FULL = 3,      /* timewait table full: TIME_WAIT exit unseen */
	COUNTER_WATCH_FULL = 4,   /* watch list full: substate switch seen late */
	COUNTER_FILTERED = 5,     /* transitions dropped by in-kernel filters */
	COUNTER_TW_OLD_SKIPPED = 6, /* timewait sockets from before tracing not
				     * followed: their share of the table was full */
	COUNTER_STATE_NESTED = 7, /* changes on_state_nested took for on_state */
	COUNTER_MAX = 8,
};

struct record {
	__u64 ts_ns;    /* CLOCK_MONOTONIC nanoseconds of the change */
	__u64 since_ns; /* when the old state began; 0: not seen */
	__u64 cookie;   /* socket cookie; stays with the timewait socket */
	__u64 tw;       /* identity of the timewait socket, 0 if none */
	__u64 aux;      /* TW records: timer expiry (jiffies); FILE: fd;
			 * ACCEPT, LISTEN -> SYN_RECV: the listener's cookie;
			 * STATE into CLOSE: the socket's sk_err */
	__u64 jiffies;  /* jiffies when the record was made */
	/* RECORD_STATE: the full socket's counters after the change, as the
	 * kernel keeps them (tcp_info's names); 0 in other records. The
	 * SYN and each FIN count as a byte where they were acked or read. */
	__u64 bytes_acked;    /* sent, acked by the peer */
	__u64 bytes_received; /* received in order */
	__u32 srtt_us;        /* smoothed RTT, microseconds */
	__u32 total_retrans;  /* segments retransmitted */
	__u32 pid;      /* owning process (tgid); 0: not known yet */
	__u32 cpu_pid;  /* process on the CPU when the change ran */
	__u32 netns;    /* network namespace inode */
	__u16 sport;    /* host byte order */
	__u16 dport;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u8 kind;      /* enum record_kind */
	__u8 family;    /* 4 or 6 */
	__u8 oldstate;  /* TCP_* as the kernel numbers them */
	__u8 newstate;
	__u8 owner_src; /* enum owner_source */
	__u8 flags;     /* enum record_flag */
	__u16 cpu;
	char comm[COMM_LEN];     /* owner's command */
	char cpu_comm[COMM_LEN]; /* command on the CPU */
};

#endif
