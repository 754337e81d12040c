#!/usr/bin/env bash
# start-postgres.sh — start a throwaway PostgreSQL 15 on a free loopback port,
# the same way internal/pgtest does (initdb as the postgres user, SCRAM auth,
# fsync off), for scripts, benchmarks and manual poking.
#
# Usage:
#   scripts/start-postgres.sh [--auth scram-sha-256|trust] [--password PW]
#                             [--conf 'name = value']... DIR
#   scripts/start-postgres.sh --stop DIR
#
# DIR is created if missing. On success the server runs from DIR/data and
# DIR/pg.env holds shell assignments (PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
# PG_BINDIR); all but the password are also printed; `. DIR/pg.env` to use them. The password
# is random unless given and is stored only in DIR (mode 0700).
set -euo pipefail

bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
auth=scram-sha-256
password=""
conf=()
stop=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--auth) auth=$2; shift 2 ;;
	--password) password=$2; shift 2 ;;
	--conf) conf+=("$2"); shift 2 ;;
	--stop) stop=1; shift ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "start-postgres: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[[ $# -eq 1 ]] || { echo "usage: $0 [options] DIR | --stop DIR" >&2; exit 2; }
dir=$(realpath -m "$1")

# as_pg runs a command as the postgres user when we are root (initdb refuses
# root), and directly otherwise.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ $stop -eq 1 ]]; then
	[[ -f $dir/data/postmaster.pid ]] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
	exit 0
fi

# free_port prints a loopback TCP port nobody listens on right now. A bind
# race is possible, so callers retry the start on failure.
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

[[ -x $bindir/initdb ]] || { echo "start-postgres: no initdb in $bindir (set PG_BINDIR)" >&2; exit 1; }
[[ -n $password ]] || password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
mkdir -p "$dir"
chmod 0755 "$dir" # postgres must traverse it; the secret files below are 0600/0700
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
as_pg mkdir -p "$dir/sock"
as_pg sh -c 'umask 077 && cat > "$1"' sh "$dir/.pw" <<<"$password"
rm -rf "$dir/data"
as_pg "$bindir/initdb" -D "$dir/data" -U postgres --pwfile "$dir/.pw" -A "$auth" \
	--no-sync -E UTF8 --locale C.UTF-8 >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
as_pg rm -f "$dir/.pw"
{
	printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" \
		"max_connections = 200" "log_min_messages = warning" "listen_addresses = '127.0.0.1'" \
		"unix_socket_directories = '$dir/sock'"
	[[ $auth == scram-sha-256 ]] && echo "password_encryption = 'scram-sha-256'"
	[[ $auth == md5 ]] && echo "password_encryption = 'md5'"
	for c in "${conf[@]}"; do echo "$c"; done
} | as_pg sh -c 'cat >> "$1"' sh "$dir/data/postgresql.conf"

port=""
for attempt in 1 2 3; do
	port=$(free_port)
	if as_pg "$bindir/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/postgres.log" -o "-p $port" start >/dev/null; then
		break
	fi
	[[ $attempt -eq 3 ]] && { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
done

umask 077
cat >"$dir/pg.env" <<ENV
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=postgres
PGPASSWORD=$(printf '%q' "$password")
PGDATABASE=postgres
PGSSLMODE=disable
PG_BINDIR=$bindir
export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE
ENV
# Only non-secret lines are printed: the env file holds the password.
grep -v '^PGPASSWORD=' "$dir/pg.env"
