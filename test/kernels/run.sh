#!/usr/bin/env bash
# Runs a static Go test binary inside other kernels: Debian's cloud kernels,
# booted under qemu (TCG, since KVM is not available where this runs) from a
# busybox initramfs, one VM per kernel. Used by `make test-kernels`; see
# docs/kernels.md for the why and for debugging.
#
#   test/kernels/run.sh --test-bin PATH [--daemon-bin PATH] [--kernel 6.1|6.12|all]
#                       [options] [-- extra args for the test binary]
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: test/kernels/run.sh --test-bin PATH [options] [-- TEST-ARGS...]

Boots each selected kernel under qemu (TCG) with an initramfs holding busybox,
ss, the test binary (/kerneltest) and the daemon (/tcpstated), runs
  /kerneltest -test.v -test.timeout=DUR TEST-ARGS...
with CI=true TCPSTATED_IN_GUEST=1 (and TCPSTATED_BIN=/tcpstated when
--daemon-bin is given), and reports PASS/FAIL per kernel.

Options:
  --test-bin PATH      static test binary (go test -c, CGO_ENABLED=0); required
  --also-test PATH     another static test binary, run first with only
                       -test.v (a package's own kernel tests); repeatable
  --daemon-bin PATH    static daemon binary, placed at /tcpstated
  --file SRC[:DST]     another file to place in the guest (default DST /NAME);
                       repeatable
  --env NAME=VALUE     extra environment for the test binary; repeatable
  --module NAME        kernel module to load in the guest (with dependencies)
                       besides the defaults; repeatable
  --kernel LIST        comma-separated: 6.1, 6.12, all (default), or a Debian
                       linux-image-* package name (meta or exact)
  --test-timeout DUR   -test.timeout for the test binary (default 15m;
                       s, m or h suffix)
  --timeout SECS       hard limit for one VM, boot included
                       (default: test timeout + 300)
  --fetch-only         only resolve and download the kernels
  --shell              debug: boot the first selected kernel to a shell on the
                       console instead of running the test (leave with
                       `exit`, or Ctrl-A x)
  --keep               keep the initramfs work directory
  -h, --help           this text

Environment:
  TCPSTATED_KERNEL_CACHE   kernel cache (default REPO/.cache/kernels)
  TCPSTATED_KERNEL_LOGS    console logs (default CACHE/logs)
  TCPSTATED_KERNEL_APPEND  extra kernel command line, e.g. "loglevel=7"
  TCPSTATED_QEMU_ACCEL     qemu accelerator (default tcg,thread=single: under multi-threaded TCG the guests showed a soft lockup and a panic around the kernel patching its own code; single-threaded did not)
EOF
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)

# Kernel series -> Debian meta-package. The meta-package always depends on
# the current exact image (ABI name), so a Debian point release is picked up
# without editing this table. Add a kernel here (and to KERNEL_ORDER).
declare -A KERNEL_META=(
	[6.1]=linux-image-cloud-amd64
	[6.12]=linux-image-6.12-cloud-amd64
)
KERNEL_ORDER=(6.1 6.12)

# Loaded in every guest when they are modules rather than built in: ss and the
# tests read TCP sockets through sock_diag, and `ss -K` (tcp_abort) needs it
# too. Without them the kernel would try to autoload them through modprobe,
# which the initramfs does not have. tun: the connection tests' delayed and
# lossy link between two namespaces (test/e2e/link_test.go).
DEFAULT_MODULES=(tcp_diag tun)

cache=${TCPSTATED_KERNEL_CACHE:-$repo/.cache/kernels}
logs=${TCPSTATED_KERNEL_LOGS:-$cache/logs}

test_bin=""
also_tests=()
daemon_bin=""
kernels_arg=all
test_timeout=15m
vm_timeout=""
fetch_only=0
shell_mode=0
keep=0
extra_files=()
extra_env=()
extra_modules=()
test_args=()

say() { echo "run.sh: $*" >&2; }
die() {
	echo "run.sh: error: $*" >&2
	exit 2
}

while (($#)); do
	case $1 in
	--test-bin) test_bin=${2:?--test-bin needs a path}; shift 2 ;;
	--also-test) also_tests+=("${2:?--also-test needs a path}"); shift 2 ;;
	--daemon-bin) daemon_bin=${2:?--daemon-bin needs a path}; shift 2 ;;
	--file) extra_files+=("${2:?--file needs SRC[:DST]}"); shift 2 ;;
	--env) extra_env+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
	--module) extra_modules+=("${2:?--module needs a name}"); shift 2 ;;
	--kernel) kernels_arg=${2:?--kernel needs a list}; shift 2 ;;
	--test-timeout) test_timeout=${2:?--test-timeout needs a duration}; shift 2 ;;
	--timeout) vm_timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--fetch-only) fetch_only=1; shift ;;
	--shell) shell_mode=1; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; test_args=("$@"); break ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

# --- arguments --------------------------------------------------------------

kernels=()
IFS=, read -r -a requested <<<"$kernels_arg"
for k in "${requested[@]}"; do
	if [[ $k == all ]]; then
		set -- "${KERNEL_ORDER[@]}"
	elif [[ -n ${KERNEL_META[$k]:-} || $k == linux-image-* ]]; then
		set -- "$k"
	else
		die "unknown kernel '$k' (known: ${KERNEL_ORDER[*]}, all, or a linux-image-* package)"
	fi
	for one in "$@"; do
		# Results are kept per kernel name: run each once.
		[[ " ${kernels[*]} " == *" $one "* ]] || kernels+=("$one")
	done
done
((${#kernels[@]})) || die "no kernel selected"

if [[ ! $test_timeout =~ ^([0-9]+)([smh])$ ]]; then
	die "--test-timeout must look like 90s, 15m or 1h, not '$test_timeout'"
fi
case ${BASH_REMATCH[2]} in
s) test_secs=${BASH_REMATCH[1]} ;;
m) test_secs=$((BASH_REMATCH[1] * 60)) ;;
h) test_secs=$((BASH_REMATCH[1] * 3600)) ;;
esac
# Boot under TCG takes seconds, but leave room for Go's own timeout panic to
# print its goroutine dump before the VM is killed.
vm_timeout=${vm_timeout:-$((test_secs + 300))}
[[ $vm_timeout =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds"

for kv in "${extra_env[@]}"; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= && $kv != *$'\n'* ]] ||
		die "--env wants NAME=VALUE on one line, not '$kv'"
done
for a in "${test_args[@]}"; do
	[[ $a != *$'\n'* ]] || die "test arguments cannot contain newlines"
done

# A dynamically linked binary would fail in the guest with a confusing "not
# found" (there is no libc there), so refuse it here. ldd exits non-zero for
# static executables.
require_static() {
	[[ -f $1 ]] || die "$1: no such file"
	if ldd "$1" >/dev/null 2>&1; then
		die "$1 is dynamically linked; build it with CGO_ENABLED=0"
	fi
}
if ((!fetch_only)); then
	[[ -n $test_bin ]] || {
		usage >&2
		die "--test-bin is required"
	}
	require_static "$test_bin"
	for b in "${also_tests[@]}"; do require_static "$b"; done
	[[ -z $daemon_bin ]] || require_static "$daemon_bin"
	for f in "${extra_files[@]}"; do
		[[ -f ${f%%:*} ]] || die "${f%%:*}: no such file"
	done
fi

# --- host tools ---------------------------------------------------------------

apt_updated=0
apt_update_once() {
	((apt_updated)) && return 0
	apt_updated=1
	say "refreshing apt lists (apt-get update)"
	apt-get -q -o DPkg::Lock::Timeout=600 update >&2
}

# Installs Debian packages; refreshes the lists only when apt could not find
# a package or fetch it (missing or stale lists), as a fresh machine has them
# missing and refreshing on every run would be slow.
apt_install() {
	local out rc=0
	((EUID == 0)) || die "missing packages $*; install them (apt-get install $*) or run as root"
	say "installing $*"
	out=$(DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends \
		-o DPkg::Lock::Timeout=600 install "$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		return 0
	fi
	if ((!apt_updated)) && grep -qE 'Unable to locate package|has no installation candidate|Failed to fetch|404' <<<"$out"; then
		apt_update_once
		DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends \
			-o DPkg::Lock::Timeout=600 install "$@" >&2 && return 0
	else
		echo "$out" >&2
	fi
	die "could not install $*"
}

pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# kmod: the kernel packages ship no modules.dep (their postinst runs depmod),
# so depmod is run on the extracted tree to resolve module dependencies.
if ((fetch_only)); then
	ensure_pkgs dpkg kmod
else
	# busybox-static, not busybox: the guest has no libc for a dynamic one.
	ensure_pkgs qemu-system-x86 busybox-static cpio iproute2 gzip kmod
	# awk reads all input: an early exit (grep -m1, head) could kill the
	# writer with SIGPIPE, which pipefail turns into a failure.
	busybox=$(dpkg-query -L busybox-static | awk '/\/bin\/busybox$/ && !n++')
	if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
		die "$busybox is not a static busybox"
	fi
	ss_bin=$(command -v ss) || die "ss not found (iproute2)"
fi

# --- kernels: resolve, download, extract --------------------------------------

mkdir -p "$cache" "$logs"
# The default cache is inside the work tree: keep git from ever picking up
# a few hundred MB of kernels, whatever the repository's .gitignore says.
[[ -e $cache/.gitignore ]] || echo '*' >"$cache/.gitignore"
# Several checkouts or concurrent runs may share the cache.
exec {cache_lock}>"$cache/.lock"
flock "$cache_lock"

# The system's apt config (as in container images) may disable apt's binary
# package cache, so that each apt-cache call parses all lists (~1 s); keep one
# in our cache, which apt revalidates against the lists.
apt_cache() {
	apt-cache -o Dir::Cache::pkgcache="$cache/apt-pkgcache.bin" "$@"
}

# Prints the exact image package that a meta-package depends on (following
# meta -> meta chains); prints the name itself if it depends on no image.
image_package() {
	local p=$1 next
	for _ in 1 2 3 4; do
		next=$(apt_cache depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
			awk '$1 ~ /^\|?Depends:$/ && $2 ~ /^linux-image-[^<>]*$/ && !n++ { print $2 }')
		[[ -n $next ]] || break
		p=$next
	done
	echo "$p"
}

candidate_version() {
	apt_cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# resolve LABEL -> sets r_pkg r_ver (from apt), or fails.
resolve() {
	local meta=${KERNEL_META[$1]:-$1}
	r_pkg=$(image_package "$meta")
	r_ver=$(candidate_version "$r_pkg")
	[[ -n $r_ver ]]
}

# fetch PKG VER -> sets f_dir to an extracted image tree; downloads only if
# that exact version is not in the cache yet.
fetch() {
	local pkg=$1 ver=$2 name deb tmp
	name=${pkg}_${ver//:/%3a}
	f_dir=$cache/$name
	[[ -f $f_dir/.complete ]] && return 0
	mkdir -p "$cache/debs"
	deb=$cache/debs/${name}_amd64.deb
	if [[ ! -s $deb ]]; then
		say "downloading $pkg=$ver"
		tmp=$(mktemp -d "$cache/debs/.dl.XXXXXX")
		# Running as root, apt would warn that its _apt sandbox user cannot
		# write to the cache; the download is verified against the lists
		# either way.
		if ! (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver" >&2); then
			rm -rf "$tmp"
			return 1
		fi
		mv "$tmp"/*.deb "$deb" || return 1
		rmdir "$tmp"
	fi
	# Extract beside the final place and rename, so that an interrupted run
	# never leaves a tree that looks complete. (set -e does not apply in a
	# function called from a condition, hence the explicit checks.)
	say "extracting $(basename "$deb")"
	rm -rf "$f_dir.tmp"
	dpkg-deb -x "$deb" "$f_dir.tmp" || die "dpkg-deb -x $deb failed"
	compgen -G "$f_dir.tmp/boot/vmlinuz-*" >/dev/null || die "$deb has no boot/vmlinuz-*"
	rm -rf "$f_dir"
	if ! mv "$f_dir.tmp" "$f_dir" || ! touch "$f_dir/.complete"; then
		die "cannot populate $f_dir"
	fi
}

# Generates modules.dep in an extracted tree (once; it is kept in the cache).
# Run under the cache lock, as the tree is shared.
depmod_tree() {
	local moddir
	for moddir in "$1"/lib/modules/* "$1"/usr/lib/modules/*; do
		[[ -d $moddir && ! -s $moddir/modules.dep ]] || continue
		depmod -b "${moddir%/lib/modules/*}" "${moddir##*/}" ||
			die "depmod failed for $moddir"
	done
}

declare -A kdir=()
for k in "${kernels[@]}"; do
	label=${k//\//_}
	if ! resolve "$k"; then
		# A fresh machine may have no apt lists at all.
		apt_update_once || true
		resolve "$k" || r_pkg=""
	fi
	if [[ -n $r_pkg && -n ${r_ver:-} ]] && ! fetch "$r_pkg" "$r_ver"; then
		# The lists may name a version the archive has since replaced
		# (security updates remove the old one).
		apt_update_once || true
		if resolve "$k"; then fetch "$r_pkg" "$r_ver" || r_pkg=""; else r_pkg=""; fi
	fi
	if [[ -n $r_pkg ]]; then
		kdir[$k]=$f_dir
		basename "$f_dir" >"$cache/resolved-$label"
	elif [[ -f $cache/resolved-$label && -f $cache/$(<"$cache/resolved-$label")/.complete ]]; then
		# Offline: the last kernel that resolved for this label still tests
		# the same series.
		kdir[$k]=$cache/$(<"$cache/resolved-$label")
		say "warning: cannot resolve $k through apt; using cached $(basename "${kdir[$k]}")"
	else
		die "cannot resolve or download a kernel for '$k' (apt-cache depends ${KERNEL_META[$k]:-$k})"
	fi
	depmod_tree "${kdir[$k]}"
	say "kernel $k: $(basename "${kdir[$k]}")"
done
flock -u "$cache_lock"

if ((fetch_only)); then
	exit 0
fi

# --- initramfs ----------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/tcpstated-kernels.XXXXXX")
cleanup() {
	if ((keep)); then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Writes a newc cpio of directory $1 to stdout, owned by root whoever runs it.
# Sorted so that the archive only changes when its content does.
cpio_of() {
	(cd "$1" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z |
		cpio --quiet -o -0 -H newc -R 0:0)
}

# place SRC DST: copies a file into the common tree, following symlinks.
place() {
	mkdir -p "$common/$(dirname "$2")"
	cp -L "$1" "$common/$2"
}

# The part shared by all kernels: busybox, ss, init, test and daemon binaries.
common=$work/common
mkdir -p "$common"/{bin,sbin,usr/bin,usr/sbin,etc/kerneltest,lib/modules,dev,proc,sys,tmp,run,root}
cp "$busybox" "$common/bin/busybox"
while read -r applet; do
	[[ -e $common/$applet || -L $common/$applet ]] && continue
	mkdir -p "$common/$(dirname "$applet")"
	ln -s /bin/busybox "$common/$applet"
done < <("$busybox" --list-full)

# ss is dynamically linked: bring its libraries and the loader at the paths ldd
# reports, which is where the loader and its built-in search path look.
place "$ss_bin" usr/bin/ss
while read -r lib; do
	place "$lib" "${lib#/}"
done < <(ldd "$ss_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')

install -m 0755 "$script_dir/init" "$common/init"
install -m 0755 "$test_bin" "$common/kerneltest"
: >"$common/etc/kerneltest/also"
for i in "${!also_tests[@]}"; do
	install -m 0755 "${also_tests[$i]}" "$common/kerneltest-also-$i"
	echo "/kerneltest-also-$i $(basename "${also_tests[$i]}")" >>"$common/etc/kerneltest/also"
done
if [[ -n $daemon_bin ]]; then
	install -m 0755 "$daemon_bin" "$common/tcpstated"
fi
for f in "${extra_files[@]}"; do
	src=${f%%:*}
	if [[ $f == *:* ]]; then dst=${f#*:}; else dst=/$(basename "$src"); fi
	place "$src" "${dst#/}"
done

# Go's resolver and os/user read these; "localhost" must resolve offline.
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$common/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$common/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$common/etc/group"

run_id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
mode="test"
((shell_mode)) && mode="shell"
{
	echo "TEST_TIMEOUT=$test_timeout"
	echo "RUN_ID=$run_id"
	echo "MODE=$mode"
} >"$common/etc/kerneltest/config"
{
	echo CI=true
	echo TCPSTATED_IN_GUEST=1
	[[ -z $daemon_bin ]] || echo TCPSTATED_BIN=/tcpstated
	for kv in "${extra_env[@]}"; do echo "$kv"; done
} >"$common/etc/kerneltest/env"
if ((${#test_args[@]})); then
	printf '%s\n' "${test_args[@]}" >"$common/etc/kerneltest/args"
else
	: >"$common/etc/kerneltest/args"
fi

say "building initramfs"
cpio_of "$common" | gzip -1 >"$work/common.cpio.gz"

# Per kernel, a second archive with its modules, decompressed on the host
# (busybox insmod reads plain .ko only) and listed dependency-first. The
# kernel unpacks concatenated archives in order, so the common one is reused.
modules_cpio() {
	local tree=$1 out=$2 moddir kver stage m
	local -A seen=()
	local order=()
	moddir=$(compgen -G "$tree/lib/modules/*" || compgen -G "$tree/usr/lib/modules/*" || true)
	moddir=${moddir%%$'\n'*}
	stage=$work/modules-$(basename "$tree")
	mkdir -p "$stage/etc/kerneltest" "$stage/lib/modules"
	: >"$stage/etc/kerneltest/modules"

	# add NAME: queue a module after its dependencies, unless built in.
	add() {
		local name=${1//-/_} line dep
		[[ -z ${seen[$name]:-} ]] || return 0
		seen[$name]=1
		if [[ -z $moddir ]]; then
			say "warning: no modules in $(basename "$tree"); cannot load $name"
			return 0
		fi
		line=$(awk -v n="$name" '{
			p = $1; sub(/:$/, "", p); b = p; sub(/.*\//, "", b)
			sub(/\.ko(\.(xz|zst|gz))?$/, "", b); gsub(/-/, "_", b)
			if (b == n) { print; exit }
		}' "$moddir/modules.dep")
		if [[ -z $line ]]; then
			if grep -qE "/${name//_/[-_]}\\.ko" "$moddir/modules.builtin" 2>/dev/null; then
				return 0
			fi
			say "warning: module $name not found for $(basename "$moddir")"
			return 0
		fi
		for dep in ${line#*:}; do
			dep=${dep##*/}
			add "${dep%%.ko*}"
		done
		order+=("${line%%:*}")
	}
	for m in "${DEFAULT_MODULES[@]}" "${extra_modules[@]}"; do
		add "$m"
	done

	kver=$(basename "${moddir:-none}")
	for m in "${order[@]}"; do
		local base=${m##*/} dst
		dst=$stage/lib/modules/${base%%.ko*}.ko
		case $m in
		*.ko.xz) ensure_pkgs xz-utils; xz -dc "$moddir/$m" >"$dst" ;;
		*.ko.zst) ensure_pkgs zstd; zstd -q -dc "$moddir/$m" >"$dst" ;;
		*.ko.gz) gzip -dc "$moddir/$m" >"$dst" ;;
		*) cp "$moddir/$m" "$dst" ;;
		esac
		echo "/lib/modules/${dst##*/}" >>"$stage/etc/kerneltest/modules"
	done
	if ((${#order[@]})); then
		say "modules for $kver: ${order[*]##*/}"
	fi
	cpio_of "$stage" | gzip -1 >"$out"
}

# --- boot ---------------------------------------------------------------------

declare -A result=() guest_kernel=() took=() logfile=()
failed=0
for k in "${kernels[@]}"; do
	tree=${kdir[$k]}
	label=${k//\//_}
	vmlinuz=$(compgen -G "$tree/boot/vmlinuz-*")
	vmlinuz=${vmlinuz%%$'\n'*}
	modules_cpio "$tree" "$work/modules-$label.cpio.gz"
	initrd=$work/initrd-$label.cpio.gz
	cat "$work/common.cpio.gz" "$work/modules-$label.cpio.gz" >"$initrd"

	log=$logs/$label.log
	logfile[$k]=$log
	# panic=-1 with -no-reboot turns a panic (or init dying) into qemu
	# exiting now instead of at the timeout; oops=panic does the same for
	# an oops that would otherwise leave the guest hung.
	append="console=ttyS0 panic=-1 oops=panic quiet ${TCPSTATED_KERNEL_APPEND:-}"
	qemu=(qemu-system-x86_64 -accel "${TCPSTATED_QEMU_ACCEL:-tcg,thread=single}" -cpu max -smp 2 -m 2G
		-nographic -no-reboot -nic none
		-kernel "$vmlinuz" -initrd "$initrd" -append "$append")

	start=$(date +%s)
	if ((shell_mode)); then
		# Interactive: no time limit, the terminal is the console. Only the
		# first selected kernel is booted.
		say "booting $k ($(basename "$vmlinuz")) to a shell; Ctrl-A x quits qemu"
		"${qemu[@]}" | tee "$log"
		exit 0
	fi
	say "booting $k ($(basename "$vmlinuz")), limit ${vm_timeout}s, log $log"
	set +e
	# --foreground keeps qemu in our process group, so Ctrl-C reaches it.
	# The console ends lines with \r\n, and SeaBIOS resets and clears the
	# terminal (ESC c, ESC [2J), which would wipe the earlier output on a
	# terminal: strip both for the log, the parser and the reader.
	timeout --foreground -k 10 "$vm_timeout" "${qemu[@]}" </dev/null 2>&1 |
		sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' |
		tee "$log"
	vm_rc=${PIPESTATUS[0]}
	set -e
	took[$k]=$(($(date +%s) - start))

	marker=$(grep -aE "^TCPSTATED-GUEST-RESULT: rc=[0-9]+ kernel=[^ ]+ secs=[0-9]+ run=$run_id\$" "$log" | tail -n1 || true)
	if [[ $marker =~ rc=([0-9]+)\ kernel=([^ ]+)\ secs=([0-9]+) ]]; then
		guest_kernel[$k]=${BASH_REMATCH[2]}
		if ((BASH_REMATCH[1] == 0)); then
			result[$k]="PASS (test ${BASH_REMATCH[3]}s)"
		else
			result[$k]="FAIL (test exit code ${BASH_REMATCH[1]})"
		fi
		if ((vm_rc != 0)); then
			say "warning: qemu exited with $vm_rc after the result"
		fi
	elif ((vm_rc == 124 || vm_rc == 137)); then
		result[$k]="FAIL (VM timed out after ${vm_timeout}s)"
	else
		result[$k]="FAIL (no result marker; qemu exit code $vm_rc)"
	fi
	[[ ${result[$k]} == PASS* ]] || failed=$((failed + 1))
done

echo
echo "== test-kernels =="
for k in "${kernels[@]}"; do
	printf '%-6s %-28s %-36s %4ss  %s\n' "$k" "${guest_kernel[$k]:-?}" "${result[$k]}" \
		"${took[$k]}" "${logfile[$k]}"
done
echo "kernels: $((${#kernels[@]} - failed)) passed, $failed failed"
((failed == 0))
