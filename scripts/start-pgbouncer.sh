#!/usr/bin/env bash
# start-pgbouncer.sh — start PgBouncer (session pooling) on a free loopback port
# in front of a server started by start-postgres.sh; the performance anchor
# for bench/ (DESIGN §6: report ratios against direct and PgBouncer).
#
# Usage:
#   scripts/start-pgbouncer.sh [--pool-mode session|transaction] DIR UPSTREAM_ENV
#   scripts/start-pgbouncer.sh --stop DIR
#
# UPSTREAM_ENV is the pg.env written by start-postgres.sh. Clients authenticate
# with SCRAM using the upstream superuser's own password: the userlist holds
# the server's SCRAM verifier (copied from pg_authid), so PgBouncer reuses the
# client's SCRAM keys upstream and never stores the plaintext. DIR/pgbouncer.env
# holds the client settings (same shape as pg.env).
set -euo pipefail

pool_mode=session
stop=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--pool-mode) pool_mode=$2; shift 2 ;;
	--stop) stop=1; shift ;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "start-pgbouncer: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ $stop -eq 1 ]]; then
	dir=$(realpath -m "$1")
	if [[ -f $dir/pgbouncer.pid ]]; then
		pid=$(cat "$dir/pgbouncer.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	exit 0
fi
[[ $# -eq 2 ]] || { echo "usage: $0 [--pool-mode M] DIR UPSTREAM_ENV | --stop DIR" >&2; exit 2; }
dir=$(realpath -m "$1")
upstream_env=$2
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[[ -x $bin ]] || { echo "start-pgbouncer: pgbouncer not installed (apt-get install pgbouncer)" >&2; exit 1; }

# shellcheck disable=SC1090
. "$upstream_env"
secret=$(psql -X -qAt -d postgres -c "select rolpassword from pg_authid where rolname = current_user")
[[ $secret == SCRAM-SHA-256* ]] || { echo "start-pgbouncer: upstream user has no SCRAM verifier" >&2; exit 1; }

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

mkdir -p "$dir"
chmod 0755 "$dir"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
as_pg sh -c 'umask 077 && cat > "$1"' sh "$dir/userlist.txt" <<<"\"$PGUSER\" \"$secret\""

port=""
for attempt in 1 2 3; do
	port=$(free_port)
	as_pg sh -c 'cat > "$1"' sh "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$PGHOST port=$PGPORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $pool_mode
max_client_conn = 500
default_pool_size = 50
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = $PGUSER
ignore_startup_parameters = extra_float_digits,options
INI
	if as_pg "$bin" -d "$dir/pgbouncer.ini" 2>>"$dir/start.err"; then
		ok=0
		for _ in $(seq 1 50); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
			sleep 0.1
		done
		[[ $ok -eq 1 ]] && break
	fi
	[[ $attempt -eq 3 ]] && { tail -n 20 "$dir/start.err" "$dir/pgbouncer.log" >&2; exit 1; }
done

umask 077
cat >"$dir/pgbouncer.env" <<ENV
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=$PGUSER
PGPASSWORD=$(printf '%q' "$PGPASSWORD")
PGDATABASE=${PGDATABASE:-postgres}
PGSSLMODE=disable
export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE
ENV
grep -v '^PGPASSWORD=' "$dir/pgbouncer.env"
