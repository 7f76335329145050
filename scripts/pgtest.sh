#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the store tests: Debian's postgresql
# (installed when missing and we are root), initdb in a temporary data
# directory owned by the unprivileged postgres user, listening only on
# 127.0.0.1 at a free port and on a unix socket in that directory.
#
#   scripts/pgtest.sh up DIR     start it; DIR/url holds the connection URL
#   scripts/pgtest.sh restart DIR  restart it (the store's reconnect test)
#   scripts/pgtest.sh down DIR   stop it (fast shutdown); DIR stays
#
# Exit 3 when PostgreSQL is missing and cannot be installed.
set -euo pipefail

log() { echo "pgtest: $*" >&2; }

bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[[ -n $d && -x $d/initdb ]] && echo "$d"
}

install_pg() {
	bindir >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		log "PostgreSQL is missing; run as root or: apt-get install postgresql"
		return 3
	fi
	log "installing Debian's postgresql"
	local policy=/usr/sbin/policy-rc.d made_policy="" rc=0
	# The package's scripts must not start the system-wide cluster.
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
		trap "rm -f '$policy'" EXIT
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null; then
		apt-get update -q >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null || rc=$?
	fi
	[[ -n $made_policy ]] && rm -f "$policy"
	if [[ $rc -ne 0 ]] || ! bindir >/dev/null; then
		log "installing postgresql failed (exit $rc)"
		return 3
	fi
}

# as runs a command as the postgres user (initdb refuses root).
as() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

up() {
	local dir=$1 bin port try
	install_pg || return $?
	bin=$(bindir)
	mkdir -p "$dir/data"
	[[ $(id -u) -eq 0 ]] && chown -R postgres: "$dir"
	chmod 700 "$dir/data"
	as "$bin/initdb" -A trust -U postgres -D "$dir/data" >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
	for try in 1 2 3 4 5; do
		port=$(shuf -i 20000-60000 -n 1)
		if as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
			-o "-k $dir -h 127.0.0.1 -p $port -c fsync=off -c full_page_writes=off" start >/dev/null; then
			echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable" >"$dir/url"
			echo "$bin" >"$dir/bin"
			log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $dir/data)"
			return 0
		fi
		log "port $port did not work (try $try)"
	done
	cat "$dir/server.log" >&2
	return 1
}

restart() {
	local dir=$1
	as "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w restart >/dev/null
}

down() {
	local dir=$1
	[[ -f $dir/bin && -d $dir/data ]] || return 0
	as "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
up) [[ -n ${2:-} ]] || { echo "usage: $0 up DIR" >&2; exit 2; }; up "$2" ;;
restart) [[ -n ${2:-} ]] || { echo "usage: $0 restart DIR" >&2; exit 2; }; restart "$2" ;;
down) [[ -n ${2:-} ]] || { echo "usage: $0 down DIR" >&2; exit 2; }; down "$2" ;;
*) echo "usage: $0 up DIR | restart DIR | down DIR" >&2; exit 2 ;;
esac
