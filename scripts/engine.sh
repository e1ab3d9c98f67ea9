#!/usr/bin/env bash
# Provide a working Docker engine + buildx for cachewhy's development, tests
# and CI.
#
# If the caller's environment already has a usable engine (a daemon that
# answers and buildx >= 0.13), that one is used. Otherwise a private dockerd
# (with its own containerd, bridge, data and state) is provisioned from
# Debian packages, unpacked under .engine/ of this clone, and started.
#
#   eval "$(scripts/engine.sh up)"     # start (idempotent) and set the env
#   scripts/engine.sh env | status | down [--purge] | --help
#
# stdout carries only shell code meant for eval; everything else goes to
# stderr. See docs/engine.md.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
PROG=engine

# ---------------------------------------------------------------- settings

E=$(realpath -m -- "${CACHEWHY_ENGINE_DIR:-$REPO/.engine}")
SUITES=${CACHEWHY_ENGINE_SUITES:-unstable trixie}
MIN_BUILDX=0.13
BASE_IMAGE=local/busybox:latest
I386_IMAGE=local/busybox:i386 # x86_64 only, for the platform-changed tests
ENGINE_PKGS=(docker.io docker-cli docker-buildx containerd "tini-static|tini")
START_TIMEOUT=60

HASH=$(printf '%s' "$E" | sha256sum | cut -c1-6)
BRIDGE=cw$HASH # 8 chars; interface names may have at most 15

PREFIX=$E/prefix
DEBS=$E/debs
APTROOT=$E/apt
DATA=$E/data
LOG=$E/dockerd.log
CLICONF=$E/config
DAEMONCONF=$E/daemon.json
ENVFILE=$E/env.sh
MARKER=$E/.cachewhy-engine
# Unix socket paths are limited to 108 bytes and containerd puts its
# sockets a few levels below the exec root: with a deep clone, keep the
# runtime state on /run instead (it is cleared at boot, like any runtime state).
if [ "${#E}" -le 60 ]; then
  RUNTIME=$E
else
  RUNTIME=/run/cachewhy-$HASH
fi
EXEC=$RUNTIME/exec
RUNDIR=$RUNTIME/run
SOCK=$RUNDIR/docker.sock
PIDFILE=$RUNDIR/dockerd.pid

DOCKER= # the docker CLI that the script itself uses

# ---------------------------------------------------------------- helpers

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

usage() {
  cat <<EOF
usage: scripts/engine.sh [up|env|status|down [--purge]|old-buildx|--help]

Provide a Docker engine with buildx (>= $MIN_BUILDX) for cachewhy.

  up        (default) use the engine of the caller's environment if it works,
            else provision and start a private dockerd under
            $E
            Idempotent. Prints export lines on stdout:
              eval "\$(scripts/engine.sh up)"
  env       print the export lines for the running engine (exit 1 if none)
  status    one line: is the engine running
  down      stop the private dockerd and remove its bridge (keeps the
            downloaded packages and the image store)
  down --purge
            also delete $E entirely
  old-buildx
            print the path of Debian trixie's buildx 0.13 plugin (downloaded
            on first use), for captures of its pretty-printed rawjson

environment:
  CACHEWHY_ENGINE_DIR      where the private engine lives (default <repo>/.engine)
  CACHEWHY_PRIVATE_ENGINE  1 = always use the private engine, even if a usable
                           docker engine is already reachable
  CACHEWHY_ENGINE_SUITES   Debian suites to take the engine from, tried in
                           order (default: "unstable trixie")
  CACHEWHY_DEBIAN_MIRROR   Debian mirror URI (default: the one in the
                           machine's apt sources)
EOF
}

# version_ge A B: is dotted version A >= B (numeric components)?
version_ge() {
  local -a a b
  IFS=. read -ra a <<<"$1"
  IFS=. read -ra b <<<"$2"
  local i x y
  for ((i = 0; i < ${#b[@]} || i < ${#a[@]}; i++)); do
    x=${a[i]:-0}; y=${b[i]:-0}
    x=${x//[^0-9]/}; y=${y//[^0-9]/}
    x=$((10#${x:-0})); y=$((10#${y:-0}))
    ((x > y)) && return 0
    ((x < y)) && return 1
  done
  return 0
}

# buildx_version_of CMD...: run CMD (which prints buildx's version line) and
# print the bare version:
# "github.com/docker/buildx v0.13.1 abc" -> 0.13.1 ; "... 0.29.1+ds1 ..." -> 0.29.1
buildx_version_of() {
  local out v
  out=$("$@" 2>/dev/null) || return 1
  v=$(printf '%s\n' "$out" | awk 'NR == 1 { print $2 }')
  v=${v#v}; v=${v%%[+-]*}
  [ -n "$v" ] || return 1
  printf '%s\n' "$v"
}

# Every mount point at or below $1, deepest first.
mounts_under() {
  local root=$1
  awk '{ print $2 }' /proc/mounts | while IFS= read -r m; do
    m=$(printf '%b' "${m//\\/\\0}") # /proc/mounts escapes spaces as \040
    case $m in "$root" | "$root"/*) printf '%s\n' "$m" ;; esac
  done | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

unmount_under() {
  local m
  [ -n "$1" ] && [ "$1" != / ] || return 0
  mounts_under "$1" | while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
      say "warning: could not unmount $m"
  done
}

# The process may end between the glob and the read: the group's 2>/dev/null
# must be in place before the redirect from /proc that fails.
cmdline_of() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null; }

# Is $1 the pid of this engine's dockerd?
is_our_dockerd() {
  local pid=$1 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(cmdline_of "$pid") || return 1
  [[ $cmd == *dockerd* && $cmd == *"--data-root $DATA "* ]]
}

dockerd_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  is_our_dockerd "$pid" || return 1
  printf '%s\n' "$pid"
}

# Processes (other than dockerd) that belong to this engine: its managed
# containerd and the shims, which all name the exec root on their command line.
leftover_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
    cmd=$(cmdline_of "$p") || continue
    [[ $cmd == *"$EXEC/"* ]] && printf '%s\n' "$p"
  done
  return 0
}

# stop_pids SECONDS PID...: SIGTERM, wait, then SIGKILL what is left.
stop_pids() {
  local wait=$1 p i alive
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < wait * 10; i++)); do
    alive=
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  say "still running after ${wait}s, killing: $*"
  kill -KILL "$@" 2>/dev/null || true
  sleep 0.5
}

engine_answers() {
  timeout 10 "$DOCKER" -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# ------------------------------------------------------------ Debian packages

debian_mirror() {
  if [ -n "${CACHEWHY_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "$CACHEWHY_DEBIAN_MIRROR"; return
  fi
  local uri=
  shopt -s nullglob
  local f
  # one-line format: deb [options] URI suite components
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -n "$uri" ] && break
    uri=$(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        if ($i !~ /security/ && $(i + 1) !~ /security|updates|backports/) { print $i; exit }
      }' "$f" 2>/dev/null || true)
  done
  # deb822 format: paragraphs with Types/URIs/Suites
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -n "$uri" ] && break
    uri=$(awk 'function flush() {
          if (types ~ /(^| )deb( |$)/ && uris != "" && uris !~ /security/ && !done) {
            split(uris, u, " "); print u[1]; done = 1 }
          types = ""; uris = "" }
        /^[ \t]*$/ { flush(); next }
        tolower($1) == "types:" { $1 = ""; types = $0 }
        tolower($1) == "uris:" { $1 = ""; sub(/^ +/, ""); uris = $0 }
        END { flush() }' "$f" 2>/dev/null || true)
  done
  shopt -u nullglob
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# apt_private SUITE ARGS...: apt-get with a configuration of our own, so the
# machine's apt setup (sources, lists, cache, pins) is neither used nor touched.
apt_private() {
  local suite=$1
  shift
  local d=$APTROOT/$suite
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  [ -f "$d/status" ] || : >"$d/status"
  if [ ! -f "$d/sources.list" ]; then
    local signed=
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
      signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    printf 'deb %s%s %s main\n' "$signed" "$(debian_mirror)" "$suite" >"$d/sources.list"
  fi
  apt-get -q \
    -o Dir::Etc::SourceList="$d/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts=/dev/null \
    -o Dir::State::Lists="$d/lists" \
    -o Dir::State::status="$d/status" \
    -o Dir::Cache="$d/cache" \
    -o Dir::Log="$d" \
    -o APT::Sandbox::User=root \
    -o Acquire::Languages=none \
    -o Acquire::Retries=3 \
    "$@"
}

# deb_of SUITE PKG: the downloaded .deb of PKG, if any.
deb_of() { { compgen -G "$DEBS/$1/${2}_*.deb" || true; } | sort | tail -n1; }

# fetch_debs SUITE PKG...: make sure $DEBS/SUITE holds a .deb of each package.
# "a|b" stands for the first of a and b that the suite has.
fetch_debs() {
  local suite=$1 p a ok missing=()
  shift
  mkdir -p "$DEBS/$suite"
  for p in "$@"; do
    ok=
    for a in ${p//|/ }; do [ -n "$(deb_of "$suite" "$a")" ] && ok=1; done
    [ -n "$ok" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  have apt-get || { say "apt-get not found"; return 1; }
  say "downloading from Debian $suite: ${missing[*]}"
  local log=$APTROOT/$suite.log
  mkdir -p "$APTROOT"
  apt_private "$suite" update >"$log" 2>&1 || { tail -n 15 "$log" >&2; return 1; }
  for p in "${missing[@]}"; do
    ok=
    for a in ${p//|/ }; do
      if (cd "$DEBS/$suite" && apt_private "$suite" download "$a") >>"$log" 2>&1; then
        ok=1; break
      fi
    done
    [ -n "$ok" ] || { tail -n 15 "$log" >&2; return 1; }
  done
}

# Do the unpacked binaries in $1 run on this machine, with a new enough buildx?
prefix_works() {
  local p=$1 v
  "$p/usr/sbin/dockerd" --version >/dev/null 2>&1 &&
    "$p/usr/bin/containerd" --version >/dev/null 2>&1 &&
    "$p/usr/bin/containerd-shim-runc-v2" -v >/dev/null 2>&1 &&
    "$p/usr/bin/docker" --version >/dev/null 2>&1 &&
    [ -x "$p/usr/bin/docker-init" ] &&
    v=$(buildx_version_of "$p/usr/libexec/docker/cli-plugins/docker-buildx" version) &&
    version_ge "$v" "$MIN_BUILDX"
}

# Make $PREFIX hold a working engine from the first suite that gives one.
ensure_prefix() {
  if [ -f "$PREFIX/.suite" ] && prefix_works "$PREFIX"; then
    return 0
  fi
  local suite tmp
  for suite in $SUITES; do
    if ! fetch_debs "$suite" "${ENGINE_PKGS[@]}" busybox-static; then
      say "could not download the engine packages from Debian $suite"
      continue
    fi
    tmp=$E/prefix.new
    rm -rf "$tmp"; mkdir -p "$tmp"
    say "unpacking the Debian $suite packages"
    local p a deb
    for p in "${ENGINE_PKGS[@]}"; do
      for a in ${p//|/ }; do
        deb=$(deb_of "$suite" "$a")
        if [ -n "$deb" ]; then dpkg-deb -x "$deb" "$tmp"; break; fi
      done
    done
    # docker.io ships docker-init -> tini-static; when only the "tini" alternative
    # was available, the link dangles: point it at whichever tini was unpacked
    if [ ! -e "$tmp/usr/bin/docker-init" ]; then
        for t in tini-static tini; do
            if [ -x "$tmp/usr/bin/$t" ]; then ln -sf "$t" "$tmp/usr/bin/docker-init"; break; fi
        done
    fi
    if prefix_works "$tmp"; then
      printf '%s\n' "$suite" >"$tmp/.suite"
      rm -rf "$PREFIX"; mv "$tmp" "$PREFIX"
      return 0
    fi
    say "the Debian $suite engine does not run here (or its buildx is older than $MIN_BUILDX)"
    rm -rf "$tmp"
  done
  die "no usable engine from the Debian suites: $SUITES"
}

ensure_runc() {
  if runc --version >/dev/null 2>&1; then return 0; fi
  have apt-get || die "runc is missing and apt-get is not available to install it"
  say "installing runc from the machine's own Debian release"
  local log=$E/runc-install.log
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >>"$log" 2>&1 || {
      tail -n 15 "$log" >&2; die "could not install runc"; }
  fi
  runc --version >/dev/null 2>&1 || die "runc was installed but does not run"
}

# ------------------------------------------------------------ base image

# busybox_rootfs_tar DEB TAR: write to TAR a minimal root filesystem made of
# the busybox of the busybox-static package DEB (one symlink per applet).
busybox_rootfs_tar() {
  local deb=$1 out=$2 tmp bb a
  tmp=$(mktemp -d)
  dpkg-deb -x "$deb" "$tmp/pkg"
  local r=$tmp/rootfs
  mkdir -p "$r/bin" "$r/etc" "$r/root" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" \
    "$r/var/tmp" "$r/home" "$r/usr/bin" "$r/usr/sbin" "$r/sbin"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 700 "$r/root"
  cp "$tmp/pkg/usr/bin/busybox" "$r/bin/busybox"
  bb=$r/bin/busybox
  "$bb" --list | while IFS= read -r a; do
    case $a in '' | busybox | */*) continue ;; esac
    [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
  done
  [ -e "$r/bin/sh" ] || { rm -rf "$tmp"; die "busybox has no sh applet"; }
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$r" -cf "$out" .
  rm -rf "$tmp"
}

# The Debian suite to take busybox-static from: the engine's own, else the
# first of $SUITES that has it.
busybox_suite() {
  local s
  if [ -f "$PREFIX/.suite" ]; then cat "$PREFIX/.suite"; return 0; fi
  for s in $SUITES; do fetch_debs "$s" busybox-static && { printf '%s\n' "$s"; return 0; }; done
  return 1
}

# Import $BASE_IMAGE (a busybox-static root filesystem) if it is missing.
ensure_base_image() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  local suite tmp deb
  suite=$(busybox_suite) || die "could not download busybox-static"
  fetch_debs "$suite" busybox-static || die "could not download busybox-static"
  say "importing $BASE_IMAGE"
  tmp=$(mktemp -d)
  deb=$(deb_of "$suite" busybox-static)
  busybox_rootfs_tar "$deb" "$tmp/rootfs.tar"
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' \
    --message "cachewhy base image: $(basename "$deb")" \
    "$tmp/rootfs.tar" "$BASE_IMAGE" >/dev/null
  rm -rf "$tmp"
}

# Import $I386_IMAGE: the busybox-static of Debian's i386 port as a
# linux/386 image. A 32-bit x86 binary runs natively on an x86_64 kernel, so
# the tests can build for a second platform without emulation (the
# platform-changed case). Only on x86_64; best effort: without it only the
# tests that need it are skipped (or fail under CI=true).
ensure_i386_image() {
  [ "$(uname -m)" = x86_64 ] || return 0
  if "$DOCKER" image inspect "$I386_IMAGE" >/dev/null 2>&1; then return 0; fi
  local suite dir deb tmp log
  suite=$(busybox_suite) || { say "warning: no busybox-static suite; $I386_IMAGE not imported"; return 0; }
  # a folder of its own: deb_of would otherwise mix up the two architectures
  dir=$DEBS/$suite-i386
  deb=$(deb_of "$suite-i386" busybox-static)
  if [ -z "$deb" ]; then
    say "downloading from Debian $suite: busybox-static:i386"
    mkdir -p "$dir" "$APTROOT"
    log=$APTROOT/$suite-i386.log
    if ! { apt_private "$suite" -o 'APT::Architectures::=i386' update &&
           (cd "$dir" && apt_private "$suite" -o 'APT::Architectures::=i386' download busybox-static:i386); } \
         >"$log" 2>&1; then
      tail -n 5 "$log" >&2
      say "warning: could not download busybox-static:i386; $I386_IMAGE not imported"
      return 0
    fi
    deb=$(deb_of "$suite-i386" busybox-static)
  fi
  say "importing $I386_IMAGE"
  tmp=$(mktemp -d)
  busybox_rootfs_tar "$deb" "$tmp/rootfs.tar"
  "$DOCKER" import --platform linux/386 \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' \
    --message "cachewhy test image (linux/386): $(basename "$deb")" \
    "$tmp/rootfs.tar" "$I386_IMAGE" >/dev/null
  rm -rf "$tmp"
}

# ------------------------------------------------------------ bridge

# The bridge of this engine: named after a hash of the engine dir, with a
# /24 in 172.31.0.0/16 that no interface or route uses yet.
subnet_free() {
  local net=$1 line
  while IFS= read -r line; do
    case $line in '' | default*) ;; *) return 1 ;; esac
  done < <(ip -4 route show match "$net" 2>/dev/null; ip -4 route show root "$net" 2>/dev/null)
  return 0
}

# Is bridge $1 used: by a running dockerd, or with ports attached?
bridge_in_use() {
  local p cmd
  [ -n "$(ls -A "/sys/class/net/$1/brif" 2>/dev/null)" ] && return 0
  for p in /proc/[0-9]*; do
    cmd=$(cmdline_of "${p#/proc/}") || continue
    [[ $cmd == *dockerd*"--bridge $1 "* ]] && return 0
  done
  return 1
}

# Remove the bridges of other engine dirs of this script whose dockerd is
# gone without a 'down' (a CI clone in a fresh folder each time would
# otherwise leave one bridge and one /24 behind per run).
gc_bridges() {
  local d name alias dir
  for d in /sys/class/net/cw*; do
    [ -d "$d/bridge" ] || continue
    name=${d##*/}
    [ "$name" = "$BRIDGE" ] && continue
    alias=$(cat "$d/ifalias" 2>/dev/null) || continue
    case $alias in cachewhy:/*) dir=${alias#cachewhy:} ;; *) continue ;; esac
    # an up/down of that engine at work right now: leave it alone
    if [ -f "$dir/.lock" ] && ! flock -n "$dir/.lock" true 2>/dev/null; then continue; fi
    bridge_in_use "$name" && continue
    ip link del dev "$name" 2>/dev/null && say "removed the unused bridge $name of $dir"
  done
  return 0
}

ensure_bridge() {
  have ip || die "'ip' (iproute2) is needed to create the engine's bridge"
  if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    gc_bridges
    ip link add "$BRIDGE" type bridge || die "could not create bridge $BRIDGE"
    ip link set dev "$BRIDGE" alias "cachewhy:$E" 2>/dev/null || true
  fi
  if [ -z "$(ip -4 -o addr show dev "$BRIDGE")" ]; then
    local start=$((16#${HASH:0:2})) i x net=
    for ((i = 0; i < 256; i++)); do
      x=$(((start + i) % 256))
      if subnet_free "172.31.$x.0/24"; then net=$x; break; fi
    done
    [ -n "$net" ] || die "no free /24 in 172.31.0.0/16 for bridge $BRIDGE"
    ip addr add "172.31.$net.1/24" dev "$BRIDGE"
  fi
  ip link set dev "$BRIDGE" up
}

# ------------------------------------------------------------ daemon

write_daemon_config() {
  local snap=overlayfs
  grep -qw overlay /proc/filesystems 2>/dev/null || snap=native
  # No iptables/NAT and no ip forwarding: builds never need the network, and
  # the host's firewall stays untouched (also with several engines at once).
  cat >"$DAEMONCONF.tmp" <<EOF
{
  "features": { "containerd-snapshotter": true },
  "storage-driver": "$snap",
  "iptables": false,
  "ip6tables": false,
  "ip-forward": false,
  "ip-masq": false,
  "log-level": "info"
}
EOF
  mv "$DAEMONCONF.tmp" "$DAEMONCONF"
}

# Clear what a dockerd of this engine that is no longer running left behind
# (a crash, a killed session, a reboot): processes, mounts, socket, pidfile.
clean_stale() {
  local pids
  pids=$(leftover_pids)
  if [ -n "$pids" ]; then
    say "stopping leftovers of an earlier engine: ${pids//$'\n'/ }"
    # shellcheck disable=SC2086
    stop_pids 10 $pids
  fi
  unmount_under "$EXEC"
  unmount_under "$DATA"
  rm -rf "$EXEC"
  rm -f "$SOCK" "$PIDFILE"
}

start_dockerd() {
  clean_stale
  ensure_bridge
  write_daemon_config
  mkdir -p "$DATA" "$EXEC" "$RUNDIR"
  if [ -f "$LOG" ] && [ "$(stat -c %s "$LOG")" -gt 10485760 ]; then mv -f "$LOG" "$LOG.old"; fi
  printf '\n===== %s: starting dockerd =====\n' "$(date -u +%FT%TZ)" >>"$LOG"
  say "starting dockerd (log: $LOG)"
  # setsid: the daemon outlives the caller's session; 9>&-: not our lock.
  env -u DOCKER_HOST -u DOCKER_CONFIG PATH="$PREFIX/usr/bin:$PREFIX/usr/sbin:$PATH" \
    setsid "$PREFIX/usr/sbin/dockerd" \
      --data-root "$DATA" \
      --exec-root "$EXEC" \
      --pidfile "$PIDFILE" \
      -H "unix://$SOCK" \
      --config-file "$DAEMONCONF" \
      --bridge "$BRIDGE" \
      </dev/null >>"$LOG" 2>&1 9>&- &
  local launched=$! i
  for ((i = 0; i < START_TIMEOUT * 4; i++)); do
    if engine_answers; then return 0; fi
    if ! kill -0 "$launched" 2>/dev/null; then
      wait "$launched" 2>/dev/null || true
      say "dockerd exited during start-up; last lines of $LOG:"
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    sleep 0.25
  done
  say "dockerd did not answer on $SOCK within ${START_TIMEOUT}s; last lines of $LOG:"
  tail -n 30 "$LOG" >&2
  exit 1
}

# ------------------------------------------------------------ env output

env_lines() {
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCK"
  printf 'export DOCKER_CONFIG=%q\n' "$CLICONF"
  # shellcheck disable=SC2016 # $PATH is for the caller's shell to expand
  printf 'export PATH=%q:"$PATH"\n' "$PREFIX/usr/bin"
}

ensure_cli_config() {
  mkdir -p "$CLICONF/cli-plugins"
  ln -sfn "$PREFIX/usr/libexec/docker/cli-plugins/docker-buildx" "$CLICONF/cli-plugins/docker-buildx"
  [ -f "$CLICONF/config.json" ] || printf '{}\n' >"$CLICONF/config.json"
}

use_private_cli() {
  DOCKER=$PREFIX/usr/bin/docker
  export DOCKER_HOST=unix://$SOCK
  export DOCKER_CONFIG=$CLICONF
  export PATH=$PREFIX/usr/bin:$PATH
  unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
}

# ------------------------------------------------------------ self-test

self_test() {
  local tmp rc=0
  tmp=$(mktemp -d)
  printf 'FROM %s\nRUN echo ok\n' "$BASE_IMAGE" >"$tmp/Dockerfile"
  # named, so that `cachewhy explain` and `watch` know it for no one's project and skip it
  timeout 300 "$DOCKER" buildx build --progress=rawjson --output=type=cacheonly \
    --build-arg BUILDKIT_BUILD_NAME=cachewhy-engine-check "$tmp" \
    >"$tmp/out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "self-test failed: docker buildx build --progress=rawjson exited $rc:"
    tail -n 30 "$tmp/out" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$tmp"
}

# ------------------------------------------------------------ external engine

# Is there a usable engine in the caller's environment (that is not ours)?
external_engine() {
  [ "${CACHEWHY_PRIVATE_ENGINE:-0}" = 1 ] && return 1
  # our own engine, active through env.sh: handled as the private engine
  [ "${DOCKER_HOST:-}" = "unix://$SOCK" ] && return 1
  have docker || return 1
  local v
  timeout 20 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1 || return 1
  v=$(buildx_version_of timeout 20 docker buildx version) || return 1
  version_ge "$v" "$MIN_BUILDX" || {
    say "the docker in the environment has buildx $v (< $MIN_BUILDX): not using it"
    return 1
  }
  return 0
}

describe_external() {
  local sv bv
  sv=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
  bv=$(buildx_version_of docker buildx version || echo '?')
  say "the environment's dockerd $sv (buildx $bv) at ${DOCKER_HOST:-the default socket}"
}

# ------------------------------------------------------------ commands

# Make $E ours: create it, or accept it if it is empty or was made by this
# script (the marker file), so that 'down --purge' never deletes a folder
# that CACHEWHY_ENGINE_DIR happened to name by mistake.
claim_engine_dir() {
  if [ -d "$E" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$E")" ]; then
    die "$E exists and was not made by this script; set CACHEWHY_ENGINE_DIR to a new or empty folder"
  fi
  mkdir -p "$E"
  : >"$MARKER"
}

take_lock() {
  exec 9>"$E/.lock"
  flock 9
}

cmd_up() {
  if external_engine; then
    DOCKER=$(command -v docker)
    claim_engine_dir
    ensure_base_image
    ensure_i386_image
    self_test
    describe_external
    echo "# cachewhy engine: the environment's docker works as it is; nothing to set"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "no usable docker engine in the environment, and a private one needs root"
  have flock || die "flock (util-linux) is needed"
  claim_engine_dir
  take_lock
  ensure_prefix
  ensure_runc
  ensure_cli_config
  use_private_cli
  if ! dockerd_pid >/dev/null || ! engine_answers; then
    if pid=$(dockerd_pid); then
      # running but not answering (yet): give it the start-up time, then fail
      local i
      for ((i = 0; i < START_TIMEOUT * 4; i++)); do engine_answers && break; sleep 0.25; done
      engine_answers || {
        say "dockerd (pid $pid) runs but does not answer on $SOCK; last lines of $LOG:"
        tail -n 30 "$LOG" >&2
        die "try: scripts/engine.sh down && scripts/engine.sh up"
      }
    else
      start_dockerd
    fi
  else
    ip link show dev "$BRIDGE" >/dev/null 2>&1 || say "warning: bridge $BRIDGE is gone; run down and up again"
  fi
  ensure_base_image
  ensure_i386_image
  env_lines >"$ENVFILE.tmp" && mv "$ENVFILE.tmp" "$ENVFILE"
  self_test
  local sv bv cv suite
  sv=$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
  bv=$(buildx_version_of "$DOCKER" buildx version || echo '?')
  cv=$("$PREFIX/usr/bin/containerd" --version 2>/dev/null | awk '{ print $3 }')
  suite=$(cat "$PREFIX/.suite")
  say "private dockerd ${sv%%+*} (buildx $bv, containerd ${cv%%[+~]*}, Debian $suite) at unix://$SOCK"
  cat "$ENVFILE"
}

cmd_env() {
  if [ -x "$PREFIX/usr/bin/docker" ] && dockerd_pid >/dev/null; then
    DOCKER=$PREFIX/usr/bin/docker
    if engine_answers && [ -f "$ENVFILE" ]; then
      cat "$ENVFILE"
      return 0
    fi
  fi
  if external_engine; then
    echo "# cachewhy engine: the environment's docker works as it is; nothing to set"
    return 0
  fi
  die "no engine is running; start one with: eval \"\$(scripts/engine.sh up)\""
}

cmd_status() {
  local pid
  if [ -x "$PREFIX/usr/bin/docker" ] && pid=$(dockerd_pid); then
    DOCKER=$PREFIX/usr/bin/docker
    if engine_answers; then
      local sv
      sv=$("$DOCKER" -H "unix://$SOCK" version --format '{{.Server.Version}}' 2>/dev/null)
      echo "running: private dockerd ${sv%%+*} (pid $pid) at unix://$SOCK"
    else
      echo "starting or stuck: private dockerd (pid $pid) does not answer on unix://$SOCK"
    fi
    return 0
  fi
  if external_engine; then
    echo "running: the environment's docker engine (${DOCKER_HOST:-default socket}); no private engine"
    return 0
  fi
  echo "not running: no private engine (dir $E) and no usable engine in the environment"
  return 1
}

cmd_down() {
  local purge=0
  case ${1:-} in
    --purge) purge=1 ;;
    '') ;;
    *) die "unknown option for down: $1" ;;
  esac
  if [ ! -f "$MARKER" ]; then
    [ -d "$E" ] && [ -n "$(ls -A "$E")" ] &&
      die "$E was not made by this script; leaving it alone"
    say "no private engine at $E"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "stopping the private engine needs root"
  take_lock
  local pid
  if pid=$(dockerd_pid); then
    say "stopping dockerd (pid $pid)"
    stop_pids 30 "$pid"
  else
    say "dockerd is not running"
  fi
  clean_stale
  if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    ip link del dev "$BRIDGE" && say "removed bridge $BRIDGE"
  fi
  if [ "$RUNTIME" != "$E" ]; then rm -rf "$RUNTIME"; fi
  if [ "$purge" = 1 ]; then
    unmount_under "$E"
    if [ -n "$(mounts_under "$E")" ]; then
      die "still mounted under $E: $(mounts_under "$E" | tr '\n' ' ')"
    fi
    exec 9>&-
    rm -rf --one-file-system "$E"
    say "removed $E"
  fi
}

# Print the path of Debian trixie's buildx 0.13 plugin binary (downloaded on
# first use): testdata/regen.py uses it to capture the pretty-printed rawjson
# shape of older buildx. The engine itself is not touched.
cmd_old_buildx() {
  local d=$E/old-buildx deb
  if [ ! -x "$d/usr/libexec/docker/cli-plugins/docker-buildx" ]; then
    fetch_debs trixie docker-buildx || die "cannot download docker-buildx from Debian trixie"
    deb=$(deb_of trixie docker-buildx)
    mkdir -p "$d"
    dpkg-deb -x "$deb" "$d"
  fi
  printf '%s\n' "$d/usr/libexec/docker/cli-plugins/docker-buildx"
}

main() {
  local cmd=${1:-up}
  [ $# -gt 0 ] && shift
  case $cmd in
    up) [ $# -eq 0 ] || die "up takes no arguments"; cmd_up ;;
    env) cmd_env ;;
    status) cmd_status ;;
    down) cmd_down "$@" ;;
    old-buildx) cmd_old_buildx ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
