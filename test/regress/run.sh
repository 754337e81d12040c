#!/usr/bin/env bash
# test/regress/run.sh — PostgreSQL's own regression suite, direct and through
# gatehouse, on one throwaway PostgreSQL 15; fails when the two legs disagree.
#
# The suite is pg_regress with parallel_schedule (≈200 tests of SQL semantics,
# errors, notices, COPY, large objects, prepared statements, cursors …). It
# runs with --use-existing against a fresh "regression" database each leg:
# first DIRECT, then THROUGH the gateway (dbname = connection "regression",
# password = a dev-issuer token). A test failing only through the gateway is a
# conformance bug (or a documented, explained difference).
#
# Usage: test/regress/run.sh [--direct-only | --gateway] [--keep] [--schedule FILE]
#                            [--policies FILE] [--policy-leg FILE]
#   --direct-only  skip the gateway leg
#   --gateway      require the gateway leg (fail if bin/gatehouse cannot serve)
#   default        run the gateway leg when bin/gatehouse can serve (GATEHOUSE_REGRESS_GATEWAY=0|1|auto)
#   --keep         keep the work directory (results, diffs, logs)
#   --policies F   load policies file F into the gateway leg
#   --policy-leg F after the gateway leg, a third leg through a gatehouse with
#                  policies file F (e.g. test/regress/allow-all.yaml), compared
#                  with the same direct leg (saves a second direct leg)
#   --via-pgbouncer run the second leg through PgBouncer instead (checks this
#                  harness, and shows what a plain pooler changes)
# Env: GATEHOUSE_BIN (default bin/gatehouse), GATEHOUSE_CACHE (suite build cache),
#      GATEHOUSE_REGRESS_TIMEOUT seconds per leg (default 900),
#      GATEHOUSE_REGRESS_DIFF_LINES diff lines shown per test (default 40).
# Exit: 0 same result sets; 1 they differ (or gateway required and absent); 2 setup error.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
gateway=${GATEHOUSE_REGRESS_GATEWAY:-auto}
keep=0
schedule=parallel_schedule
policy_args=()
policy_leg=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--direct-only) gateway=0; shift ;;
	--gateway) gateway=1; shift ;;
	--keep) keep=1; shift ;;
	--via-pgbouncer) gateway=pgbouncer; shift ;;
	--schedule) schedule=$2; shift 2 ;;
	--policies) policy_args=(--policies "$2"); shift 2 ;;
	--policy-leg) policy_leg=$2; shift 2 ;;
	-h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
bin=${GATEHOUSE_BIN:-$root/bin/gatehouse}
bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
log() { echo "regress: $*" >&2; }

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ $gateway == pgbouncer ]]; then
	:
elif [[ $gateway == auto ]]; then
	if "$root/scripts/start-gatehouse.sh" --check --bin "$bin"; then gateway=1; else
		gateway=0
		log "bin/gatehouse cannot serve yet: running the DIRECT leg only"
	fi
elif [[ $gateway == 1 ]] && ! "$root/scripts/start-gatehouse.sh" --check --bin "$bin"; then
	log "gateway leg required but $bin cannot serve (go build -o bin/gatehouse ./cmd/gatehouse)"
	exit 1
fi

tree=$("$root/scripts/regress-build.sh") || exit 2
work=$(mktemp -d /tmp/gatehouse-regress.XXXXXX)
chmod 0755 "$work"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$work"; fi # pg_regress runs as postgres
cleanup() {
	"$root/scripts/start-gatehouse.sh" --stop "$work/gw" 2>/dev/null || true
	"$root/scripts/start-gatehouse.sh" --stop "$work/gw-policy" 2>/dev/null || true
	"$root/scripts/start-postgres.sh" --stop "$work/pg" 2>/dev/null || true
	if [[ $keep -eq 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The server reads the suite's data files (COPY FROM) and loads regress.so,
# and writes results/ (COPY TO): a copy owned by postgres makes both work even
# when the cache sits under a home directory the server cannot enter.
cp -a "$tree/src/test/regress" "$work/suite"
if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$work/suite"; fi

log "starting PostgreSQL"
"$root/scripts/start-postgres.sh" "$work/pg" >/dev/null || exit 2

# fresh_db recreates "regression" the way pg_regress would without
# --use-existing (template0 and the same per-database settings).
fresh_db() {
	(
		. "$work/pg/pg.env"
		psql -X -q -v ON_ERROR_STOP=1 -d postgres <<-'SQL'
			DROP DATABASE IF EXISTS regression WITH (FORCE);
			CREATE DATABASE regression TEMPLATE = template0;
			ALTER DATABASE regression SET lc_messages TO 'C';
			ALTER DATABASE regression SET lc_monetary TO 'C';
			ALTER DATABASE regression SET lc_numeric TO 'C';
			ALTER DATABASE regression SET lc_time TO 'C';
			ALTER DATABASE regression SET bytea_output TO 'hex';
			ALTER DATABASE regression SET timezone_abbreviations TO 'Default';
		SQL
		# Roles and tablespaces the suite leaves behind would make the next leg's
		# CREATE ROLE/TABLESPACE fail for reasons unrelated to the path.
		psql -X -qAt -d postgres -c "select format('DROP ROLE %I;', rolname) from pg_roles where rolname like 'regress\_%'" |
			psql -X -q -d postgres >/dev/null 2>&1 || true
	)
}

# run_leg NAME ENVFILE: pg_regress as the postgres user from its own writable
# output directory; the client settings come from ENVFILE.
run_leg() {
	local name=$1 envfile=$2 out=$work/$1
	as_pg mkdir -p "$out"
	fresh_db
	local start=$SECONDS
	(
		. "$envfile"
		cd "$work/suite"
		# The settings travel in the environment (runuser keeps it), never in
		# argv: a token on a command line is readable by every local user.
		# A hung session would otherwise hang the run (and CI) forever; tests
		# that never ran count as failures of the leg.
		as_pg timeout "${GATEHOUSE_REGRESS_TIMEOUT:-900}" ./pg_regress --use-existing --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
			--bindir="$bindir" --inputdir=. --outputdir="$out" --dlpath=. \
			--dbname=regression --schedule="$schedule" --max-connections=20 >"$work/$name.out" 2>&1
	) || true
	if grep -q '^=* running regression' "$work/$name.out" && ! grep -qE 'tests? (passed|failed)' "$work/$name.out"; then
		log "$name leg did not finish (timeout ${GATEHOUSE_REGRESS_TIMEOUT:-900}s or crash): unfinished tests count as failed"
	fi
	log "$name leg took $((SECONDS - start))s"
	# "test foo ... ok", "     foo ... FAILED", "foo ... failed (ignored)"
	sed -nE 's/^(test +| +)?([A-Za-z0-9_.-]+) +\.\.\. +(ok|FAILED|failed \(ignored\)).*/\2 \3/p' "$work/$name.out" |
		awk '{print $1, ($2 == "ok" ? "ok" : ($2 == "FAILED" ? "FAILED" : "ignored"))}' | sort >"$work/$name.results"
}

summary() { # NAME [LABEL]
	local r=$work/$1.results total passed failed label=${2:-$1}
	total=$(wc -l <"$r")
	passed=$(grep -c ' ok$' "$r" || true)
	failed=$((total - passed))
	printf '%-10s %d of %d tests passed, %d failed' "$label:" "$passed" "$total" "$failed"
	# pg_regress's own verdict, e.g. " 2 of 213 tests failed."
	printf '   (pg_regress: %s)\n' "$(grep -E 'tests? (passed|failed)' "$work/$1.out" | tail -n1 | sed 's/^ *//; s/ *$//')"
}

# excerpt NAME TEST: the first lines of TEST's diff from leg NAME.
excerpt() {
	# awk stops printing by itself: `| head` would SIGPIPE awk under pipefail.
	awk -v t="/$2.out" -v max="${GATEHOUSE_REGRESS_DIFF_LINES:-40}" '
		index($0, "diff ") == 1 { show = (index($0, t) > 0); next }
		show && (index($0, "--- ") == 1 || index($0, "+++ ") == 1) { next }
		show && n++ < max { print "    " $0 }' "$work/$1/regression.diffs" 2>/dev/null || true
}

run_leg direct "$work/pg/pg.env"
[[ -s $work/direct.results ]] || { log "direct leg produced no results:"; tail -n 30 "$work/direct.out" >&2; exit 2; }

if [[ $gateway == 0 ]]; then
	echo "== PostgreSQL regression suite ($schedule, suite $(cat "$tree/.gatehouse-source-version" 2>/dev/null || echo '?'), server $("$bindir/postgres" --version | awk '{print $3}'))"
	summary direct
	grep -v ' ok$' "$work/direct.results" | sed 's/^/  direct failure: /' || true
	echo "gateway leg skipped"
	exit 0
fi

legs=(gateway)
if [[ $gateway == pgbouncer ]]; then
	log "starting PgBouncer (second leg goes through it, not gatehouse)"
	"$root/scripts/start-pgbouncer.sh" "$work/gw" "$work/pg/pg.env" >/dev/null || exit 2
	run_leg gateway "$work/gw/pgbouncer.env"
	"$root/scripts/start-pgbouncer.sh" --stop "$work/gw"
else
	log "starting gatehouse"
	"$root/scripts/start-gatehouse.sh" --bin "$bin" "${policy_args[@]}" --connection regression "$work/gw" "$work/pg/pg.env" >/dev/null || exit 2
	run_leg gateway "$work/gw/gatehouse.env"
	if [[ -n $policy_leg ]]; then
		"$root/scripts/start-gatehouse.sh" --stop "$work/gw"
		log "starting gatehouse with policies $policy_leg"
		"$root/scripts/start-gatehouse.sh" --bin "$bin" --policies "$policy_leg" --connection regression "$work/gw-policy" "$work/pg/pg.env" >/dev/null || exit 2
		run_leg policy "$work/gw-policy/gatehouse.env"
		legs+=(policy)
	fi
fi

echo "== PostgreSQL regression suite ($schedule, suite $(cat "$tree/.gatehouse-source-version" 2>/dev/null || echo '?'), server $("$bindir/postgres" --version | awk '{print $3}'))"
summary direct
label() { # LEG: how a leg is named in the output
	case $1 in
	policy) echo "gatehouse with $(basename "$policy_leg")" ;;
	*) if [[ $gateway == pgbouncer ]]; then echo pgbouncer; else echo "gatehouse${policy_args[1]:+ with $(basename "${policy_args[1]}")}"; fi ;;
	esac
}
for leg in "${legs[@]}"; do summary "$leg" "$(label "$leg")"; done

# Known, explained differences (test/regress/gateway-differences.txt: "test
# reason…" lines) are printed with their reason on every run, never silently
# dropped, but do not fail the run; a listed test that passes again is flagged
# so the list stays true.
known=$root/test/regress/gateway-differences.txt
reason() { [[ ! -f $known ]] || sed -nE "s/^$1[[:space:]]+//p" "$known" | head -n1; }

# compare LEG: prints how LEG's results differ from the direct leg's; returns
# 0 when they differ at most by known differences, 1 otherwise.
compare() {
	local leg=$1 name
	name=$(label "$leg")
	echo "== direct vs $name"
	join -a1 -a2 -e missing -o 0,1.2,2.2 "$work/direct.results" "$work/$leg.results" >"$work/$leg.joined"
	local only_gw only_direct both differs="" unexplained="" t f r
	only_gw=$(awk '$2 == "ok" && $3 != "ok" {print $1}' "$work/$leg.joined")
	only_direct=$(awk '$2 != "ok" && $3 == "ok" {print $1}' "$work/$leg.joined")
	both=$(awk '$2 != "ok" && $3 != "ok" {print $1}' "$work/$leg.joined" | tr '\n' ' ')
	if [[ -n $both ]]; then
		echo "failing on both paths (not the gateway's doing): $both"
		# ... unless the gateway fails them differently: compare the outputs.
		for t in $both; do
			f=$(find "$work/direct/results" -name "$t.out" -print -quit)
			[[ -n $f ]] || continue
			cmp -s "$f" "$work/$leg/results/${f#"$work/direct/results/"}" ||
				{ echo "  but $t's output differs between the paths:"; diff "$f" "$work/$leg/results/${f#"$work/direct/results/"}" | sed -n '1,20s/^/    /p' || true; differs+="$t "; }
		done
	fi
	if [[ -n $only_direct ]]; then echo "failing only DIRECT (flaky?): $(echo $only_direct)"; fi
	for t in $only_gw; do
		r=$(reason "$t")
		if [[ -n $r ]]; then
			echo "known difference: $t — $r"
		else
			unexplained+="$t "
		fi
	done
	if [[ -f $known ]]; then
		for t in $(grep -vE '^[[:space:]]*(#|$)' "$known" | awk '{print $1}'); do
			grep -qx "$t ok ok" "$work/$leg.joined" && echo "note: $t is listed in gateway-differences.txt but now passes through $name: remove it"
		done
	fi
	unexplained+=$differs
	if [[ -z $only_gw && -z $only_direct && -z $differs ]]; then
		echo "RESULT ($name): same result set direct and through $name"
		return 0
	fi
	if [[ -n $only_gw ]]; then
		echo "failing only THROUGH $name: $(echo $only_gw)"
		for t in $only_gw; do
			echo "--- $t${GATEHOUSE_REGRESS_DIFF_LINES:+ (first $GATEHOUSE_REGRESS_DIFF_LINES diff lines)}"
			excerpt "$leg" "$t"
		done
	fi
	if [[ -z $unexplained ]]; then
		echo "RESULT ($name): result sets differ only by the known differences above${only_direct:+ (and direct-only failures)}"
		[[ -z $only_direct ]] && return 0
		return 1
	fi
	echo "RESULT ($name): result sets differ; unexplained: $unexplained"
	return 1
}

status=0
for leg in "${legs[@]}"; do compare "$leg" || status=1; done
if [[ $status -ne 0 && $keep -ne 1 ]]; then echo "(re-run with --keep to inspect $work/{direct,$(IFS=,; echo "${legs[*]}")}/regression.diffs)"; fi
exit $status
