#!/usr/bin/env bash
# Install what tcpstated needs, on a fresh Debian 12+ or Ubuntu 22.04+
# machine. Used by the README, .ci/run and the Vagrant box.
#
#   scripts/provision.sh          build and run: make, git, Go (the BPF object
#                                 is committed, so no compiler for it)
#   scripts/provision.sh --test   also everything the tests and `make
#                                 generate` use: clang, libbpf, bpftool,
#                                 bpftrace, qemu, rsyslog, Prometheus...
#
# Safe to re-run: it only installs what is missing and says what it did.
# It never leaves a service running that it installed: the tests start their
# own rsyslogd and prometheus with their own configs and ports.
#
# Environment:
#   PROVISION_GO_URL_BASE   where to fetch Go tarballs (default https://go.dev/dl)
#   PROVISION_SKIP_GO=1     do not check or install Go
set -euo pipefail

log()  { printf '[provision] %s\n' "$*"; }
warn() { printf '[provision] WARNING: %s\n' "$*" >&2; }
die()  { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Everything temporary is listed here and removed on any exit, error or not.
CLEANUP=()
cleanup() { [ "${#CLEANUP[@]}" -eq 0 ] || rm -rf -- "${CLEANUP[@]}"; }
trap cleanup EXIT

GO_URL_BASE=${PROVISION_GO_URL_BASE:-https://go.dev/dl}

FOR_TESTS=0
case "${1:-}" in
"") ;;
--test) FOR_TESTS=1 ;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed -n '/^#/s/^# \{0,1\}//p'
	exit 0
	;;
*) die "unknown argument '$1' (none, or --test)" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0)"
command -v apt-get >/dev/null || die "apt-get not found: only Debian and Ubuntu are supported"
# shellcheck disable=SC1091
. /etc/os-release
log "host: ${PRETTY_NAME:-unknown}, kernel $(uname -r), $(dpkg --print-architecture)"

export DEBIAN_FRONTEND=noninteractive
# Fresh cloud boxes often run unattended-upgrades at first boot: wait for the
# dpkg lock instead of failing. Keep existing config files on upgrade.
APT_OPTS=(-y -q --no-install-recommends
	-o DPkg::Lock::Timeout=600
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Packages by purpose:
#   run:     make git ca-certificates curl (Go is fetched below if missing)
#   --test:  clang llvm libbpf-dev (bpf2go compiles bpf/*.c with clang),
#            bpftool bpftrace iproute2 (ss, ip netns for the test hosts),
#            rsyslog rsyslog-gnutls prometheus (sink and scrape targets started
#            by the tests; rsyslog-gnutls is the RFC 5425 TLS input's driver),
#            qemu-system-x86 busybox-static cpio xz-utils zstd (kernel matrix VMs),
#            libcap2-bin (setcap/capsh for the non-root tests),
#            systemd (systemd-analyze for the unit checks), tmux (top in a terminal)
PACKAGES=(make git ca-certificates curl)
if [ "$FOR_TESTS" = 1 ]; then
	PACKAGES+=(clang llvm libbpf-dev iproute2 bpftrace
		rsyslog rsyslog-gnutls prometheus qemu-system-x86 busybox-static cpio xz-utils zstd
		libcap2-bin systemd tmux)
fi

is_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

has_candidate() {
	local c
	c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$c" ] && [ "$c" != "(none)" ]
}

APT_UPDATED=0
apt_update_once() {
	[ "$APT_UPDATED" = 1 ] && return 0
	log "apt-get update"
	apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
	APT_UPDATED=1
}

# bpftool is its own package on Debian 12; on Ubuntu it ships in
# linux-tools-common (a wrapper) plus the binary matching the running kernel.
bpftool_packages() {
	if has_candidate bpftool; then
		echo bpftool
	elif has_candidate "linux-tools-$(uname -r)"; then
		echo linux-tools-common "linux-tools-$(uname -r)"
	elif has_candidate linux-tools-generic; then
		echo linux-tools-common linux-tools-generic
	fi
}

# --- apt packages -----------------------------------------------------------

missing=()
for p in "${PACKAGES[@]}"; do
	is_installed "$p" || missing+=("$p")
done
if [ "$FOR_TESTS" = 1 ] && { ! command -v bpftool >/dev/null 2>&1 || ! bpftool version >/dev/null 2>&1; }; then
	apt_update_once
	read -r -a bt <<<"$(bpftool_packages)"
	if [ "${#bt[@]}" -eq 0 ]; then
		warn "no bpftool package for this distribution/kernel; continuing without bpftool"
	fi
	for p in "${bt[@]}"; do
		is_installed "$p" || missing+=("$p")
	done
fi

# Whether this run installs rsyslog decides below whether to switch it off.
rsyslog_was_missing=0
is_installed rsyslog || rsyslog_was_missing=1

if [ "${#missing[@]}" -gt 0 ]; then
	apt_update_once

	# A policy-rc.d that answers 101 ("action forbidden") stops both
	# invoke-rc.d and deb-systemd-invoke from starting services during
	# postinst. Only add one if the machine has none (containers often do),
	# and always remove ours, even when apt fails.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# temporary, from tcpstated scripts/provision.sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		CLEANUP+=("$policy")
	fi

	log "installing: ${missing[*]}"
	apt_log=$(mktemp)
	CLEANUP+=("$apt_log")
	if ! apt-get install "${APT_OPTS[@]}" "${missing[@]}" >"$apt_log" 2>&1; then
		tail -n 40 "$apt_log" >&2
		die "apt-get install failed (last lines above)"
	fi
	log "installed: $(grep -c '^Setting up ' "$apt_log") packages, including dependencies"
else
	log "all apt packages already installed"
fi

# --- services that must not run ---------------------------------------------

systemd_running() { [ -d /run/systemd/system ]; }

# Stop and disable a service so it neither runs now nor after a reboot.
# systemctl enable/disable work on unit files even where systemd is not
# PID 1 (containers), so the box stays correct if it is later booted.
quiesce_unit() {
	local unit=$1 did=()
	if systemd_running; then
		if systemctl is-active --quiet "$unit" 2>/dev/null; then
			systemctl stop "$unit" && did+=(stopped)
		fi
	elif [ -x "/etc/init.d/$unit" ] && "/etc/init.d/$unit" status >/dev/null 2>&1; then
		"/etc/init.d/$unit" stop >/dev/null && did+=(stopped)
	fi
	if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
		systemctl disable --quiet "$unit" 2>/dev/null && did+=("disabled (systemd)")
	fi
	if compgen -G "/etc/rc[2-5].d/S*$unit" >/dev/null; then
		update-rc.d "$unit" disable >/dev/null 2>&1 && did+=("disabled (sysv)")
	fi
	if [ "${#did[@]}" -gt 0 ]; then
		log "$unit: ${did[*]}"
	fi
}

# Debian's postinst scripts enable and start both (the policy-rc.d above
# only stopped the start). prometheus listens on :9090, where the tests
# start their own; it exists only because the package does, so it is always
# switched off. rsyslog holds /proc/kmsg and the journal's syslog socket but
# may be the machine's real logger: only switched off when this run
# installed it.
if [ "$FOR_TESTS" = 1 ]; then
	quiesce_unit prometheus
fi
if [ "$FOR_TESTS" = 1 ] && [ "$rsyslog_was_missing" = 1 ]; then
	quiesce_unit rsyslog
fi

# --- Go -------------------------------------------------------------------------

# Prints the version of the given go binary ("1.26.8"), or nothing.
go_version_of() {
	"$1" version 2>/dev/null | awk '{sub(/^go/, "", $3); print $3}'
}

# version_ge A B: true when version A >= version B (sort -V orders 1.9 < 1.26).
version_ge() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}

# The Go download page lists every file with its SHA-256 as JSON. Without a
# JSON tool on a fresh machine: join the lines, put each {...} object on a
# line of its own (file objects have no nested braces), keep our file's line
# and cut the sha256 out of it. Works for indented and compact JSON alike.
go_tarball_sha256() {
	local file=$1
	curl -fsSL --connect-timeout 15 --max-time 120 "$GO_URL_BASE/?mode=json&include=all" |
		tr -d '\n' | tr '{}' '\n' |
		grep -F "\"$file\"" | grep -E "\"filename\": *\"$file\"" |
		sed -n 's/.*"sha256": *"\([0-9a-f]\{64\}\)".*/\1/p' | head -n1
}

install_go() {
	local want=$1 arch file tmp sum
	arch=$(dpkg --print-architecture)
	file="go${want}.linux-${arch}.tar.gz"
	tmp=$(mktemp -d)
	CLEANUP+=("$tmp")

	log "downloading $GO_URL_BASE/$file"
	if ! curl -fsSL --connect-timeout 15 --max-time 900 -o "$tmp/$file" "$GO_URL_BASE/$file"; then
		die "Go >= $want is required (go.mod) but none is installed, and $GO_URL_BASE/$file could not be downloaded (no network?). Install Go $want into /usr/local/go by hand, then re-run this script."
	fi
	sum=$(go_tarball_sha256 "$file") || true
	[ -n "$sum" ] || die "could not get the SHA-256 of $file from $GO_URL_BASE; refusing to install an unverified toolchain"
	echo "$sum  $tmp/$file" | sha256sum -c --quiet - || die "checksum mismatch for $file"

	# Unpack beside the old tree, then swap, so a failed unpack leaves
	# the old toolchain working.
	mkdir "$tmp/new"
	tar -C "$tmp/new" -xzf "$tmp/$file"
	rm -rf /usr/local/go.old
	[ -d /usr/local/go ] && mv /usr/local/go /usr/local/go.old
	mv "$tmp/new/go" /usr/local/go
	rm -rf /usr/local/go.old
	log "installed Go $(go_version_of /usr/local/go/bin/go) in /usr/local/go"
}

if [ "${PROVISION_SKIP_GO:-0}" = 1 ]; then
	log "PROVISION_SKIP_GO=1: not checking Go"
else
	want=$(awk '$1 == "go" { print $2; exit }' "$REPO_ROOT/go.mod" 2>/dev/null || true)
	[ -n "$want" ] || die "cannot read the go version from $REPO_ROOT/go.mod"

	# Prefer /usr/local/go (where the official tarball lives and where these
	# machines have it), then whatever is on PATH.
	have_bin=""
	for g in /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
		if [ -z "$g" ] || [ ! -x "$g" ]; then continue; fi
		v=$(go_version_of "$g")
		if [ -n "$v" ] && version_ge "$v" "$want"; then
			have_bin=$g
			break
		fi
		log "ignoring $g: Go ${v:-unknown} is older than go.mod's $want"
	done

	if [ -n "$have_bin" ]; then
		log "Go $(go_version_of "$have_bin") at $have_bin satisfies go.mod ($want)"
	else
		install_go "$want"
		have_bin=/usr/local/go/bin/go
	fi

	# sudo resets PATH to secure_path, which has /usr/local/bin but not
	# /usr/local/go/bin: link the tools there so `sudo make test` finds them.
	# Never replace a go in /usr/local/bin that someone else put there.
	if [ "$have_bin" = /usr/local/go/bin/go ]; then
		for t in go gofmt; do
			link=/usr/local/bin/$t
			if [ ! -e "$link" ] || [ "$(readlink "$link" 2>/dev/null)" = "/usr/local/go/bin/$t" ]; then
				if [ "$(readlink "$link" 2>/dev/null)" != "/usr/local/go/bin/$t" ]; then
					ln -sf "/usr/local/go/bin/$t" "$link"
					log "linked $link -> /usr/local/go/bin/$t"
				fi
			else
				warn "$link exists and is not ours; make sure /usr/local/go/bin comes first in PATH"
			fi
		done
	fi
fi

# --- report -----------------------------------------------------------------

ver() { "$@" 2>/dev/null | head -n1 || true; }
log "versions:"
log "  $(ver go version)"
if [ "$FOR_TESTS" = 1 ]; then
	log "  $(ver clang --version)"
	log "  bpftool: $(ver bpftool version)"
	log "  bpftrace: $(ver bpftrace --version)"
	log "  $(ver qemu-system-x86_64 --version)"
	log "  $(prometheus --version 2>&1 | head -n1 || true)"
	log "  systemd-analyze: $(ver systemd-analyze --version)"
fi
if [ -r /sys/kernel/btf/vmlinux ]; then
	log "kernel BTF: /sys/kernel/btf/vmlinux present"
else
	warn "kernel BTF missing (/sys/kernel/btf/vmlinux): the daemon's CO-RE programs cannot load on this kernel"
fi
log "done"
