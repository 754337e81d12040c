#!/usr/bin/env bash
# bench/masking.sh — result-heavy masked reads. pgbench runs a custom script
# (-f) that reads ROWS rows of a 10-column table per query through gatehouse
# with a masking policy (2 columns masked by column rules, entity scan on the
# one other text column) and through gatehouse with no policy; also through a
# gatehouse with the same policy minus masking (to tell policy cost from
# masking cost) and directly, for reference. One PostgreSQL, one run, the
# paths interleaved and their order rotating each round; medians over rounds.
#
# Usage: bench/masking.sh [-T SECONDS] [-R ROUNDS] [-c "4"] [-M "simple prepared"]
#                         [-n ROWS] [-N TABLE_ROWS] [-o FILE.md] [--cpuprofile FILE]
#   -T  seconds per sample (default 10)      -R  rounds (default 3)
#   -n  rows per query (default 100)         -N  rows in the table (default 10000)
#   -o  also write the markdown table to FILE
#   --cpuprofile FILE  CPU profile of the masking gateway (serve --cpuprofile)
# Env: GATEHOUSE_BIN (default bin/gatehouse). Never a pass/fail test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
T=10
R=3
clients="4"
modes="simple prepared"
rows=100
nrows=10000
outfile=""
cpuprofile=""
while [[ $# -gt 0 ]]; do
	case $1 in
	-T) T=$2; shift 2 ;;
	-R) R=$2; shift 2 ;;
	-c) clients=$2; shift 2 ;;
	-M) modes=$2; shift 2 ;;
	-n) rows=$2; shift 2 ;;
	-N) nrows=$2; shift 2 ;;
	-o) outfile=$2; shift 2 ;;
	--cpuprofile) cpuprofile=$(realpath -m "$2"); shift 2 ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "masking.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
bin=${GATEHOUSE_BIN:-$root/bin/gatehouse}
log() { echo "bench: $*" >&2; }
"$root/scripts/start-gatehouse.sh" --check --bin "$bin" || { log "$bin cannot serve (make build)"; exit 1; }

work=$(mktemp -d /tmp/gatehouse-maskbench.XXXXXX)
chmod 0755 "$work"
cleanup() {
	for g in gw_none gw_rules gw_mask; do
		"$root/scripts/start-gatehouse.sh" --stop "$work/$g" 2>/dev/null || true
	done
	"$root/scripts/start-postgres.sh" --stop "$work/pg" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

log "starting PostgreSQL"
"$root/scripts/start-postgres.sh" "$work/pg" >/dev/null
(
	. "$work/pg/pg.env"
	psql -X -q -d postgres -c "CREATE DATABASE bench"
	# Ten columns: card_number and email are masked by column rules; notes,
	# the one other text column, is scanned for entities (a phone number,
	# a card number or an e-mail address in three rows of four).
	psql -X -q -v ON_ERROR_STOP=1 -d bench <<SQL
CREATE TABLE customers (
	id int8 PRIMARY KEY, card_number text, email text, notes text, amount numeric(12,2),
	qty int4, created date, updated timestamptz, active bool, ref uuid);
INSERT INTO customers
SELECT g, '4111' || lpad(g::text, 12, '0'), 'customer' || g || '@example.com',
	CASE g % 4
	WHEN 0 THEN 'Customer called from +1 (415) 627-' || lpad((g % 10000)::text, 4, '0') || ' about order ' || g || '; wants a callback.'
	WHEN 1 THEN 'Paid with card 4111 1111 1111 1111 on the second attempt; receipt sent, nothing else to do.'
	WHEN 2 THEN 'Asked to update the billing address. No action needed until the next invoice run in March.'
	ELSE 'Please copy jane.doe' || g || '@example.org on the renewal quote and the signed order form.'
	END,
	(g % 100000) / 100.0, g % 50, date '2024-01-01' + g % 365, timestamptz '2024-01-01' + g * interval '1 minute',
	g % 2 = 0, md5(g::text)::uuid
FROM generate_series(1, $nrows) g;
ANALYZE customers;
SQL
)

cat >"$work/select.sql" <<SQL
\set start random(0, $((nrows - rows)))
SELECT * FROM customers WHERE id > :start ORDER BY id LIMIT $rows;
SQL
rules='    rules:
      - allow: statement.kind in ["select", "set", "show", "begin", "commit", "rollback"]
    default: deny'
cat >"$work/rules.yaml" <<YAML
policies:
  - name: bench-rules
    connections: ["*"]
    principals: ["*"]
$rules
YAML
cat >"$work/mask.yaml" <<YAML
policies:
  - name: bench-masking
    connections: ["*"]
    principals: ["*"]
$rules
    masking:
      columns:
        - { column: "customers.card_number", method: last4 }
        - { column: "customers.email", method: email-domain }
      entities: [credit_card, email, phone, us_ssn, iban, secret]
YAML

start_gw() { # DIR [--policies FILE]
	local dir=$1
	shift
	"$root/scripts/start-gatehouse.sh" --bin "$bin" --connection bench --subject bench "$@" "$work/$dir" "$work/pg/pg.env" >/dev/null
	cp "$work/$dir/gatehouse.env" "$work/$dir.env"
}
cp "$work/pg/pg.env" "$work/direct.env"
start_gw gw_none
start_gw gw_rules --policies "$work/rules.yaml"
GATEHOUSE_SERVE_ARGS=${cpuprofile:+--cpuprofile $cpuprofile} start_gw gw_mask --policies "$work/mask.yaml"
paths=(direct gw_none gw_rules gw_mask)

# The masking gateway really masks: a card number never comes back whole.
(
	. "$work/gw_mask.env"
	out=$(psql -X -Atc "SELECT card_number, email, notes FROM customers WHERE id BETWEEN 1 AND 4 ORDER BY id")
	if grep -q -e '4111000000000001' -e 'customer1@' -e '4111 1111 1111 1111' <<<"$out"; then
		log "masking gateway returned unmasked values:"
		echo "$out" >&2
		exit 1
	fi
)

# cputicks PATH: user+system clock ticks the path's gateway has used so far
# (empty for direct). CPU per query is far less sensitive than TPS to other
# load on the machine, which only stretches the wall clock.
cputicks() {
	[[ -f $work/$1/gatehouse.pid ]] || return 0
	awk '{print $14 + $15}' "/proc/$(cat "$work/$1/gatehouse.pid")/stat" 2>/dev/null || true
}
hz=$(getconf CLK_TCK)

sample() { # PATH MODE CLIENTS ROUND
	local out=$work/run-$1-$2-$3-$4.log c0 c1
	c0=$(cputicks "$1")
	(
		. "$work/$1.env"
		pgbench -n -f "$work/select.sql" -M "$2" -c "$3" -j "$3" -T "$T" bench >"$out" 2>&1
	) || { log "pgbench failed on $1 -M $2 -c $3:"; tail -n 5 "$out" >&2; return 0; }
	c1=$(cputicks "$1")
	local tps lat n cpu
	tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$out" | tail -n1)
	lat=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$out")
	n=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$out")
	cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$hz" 'BEGIN { if (a == "" || b == "" || n + 0 == 0) print "-"; else printf "%.1f", (b - a) / hz * 1e6 / n }')
	echo "$1 $2 $3 $tps $lat $cpu" >>"$work/samples"
	log "round $4: $1 -M $2 -c $3: $tps tps, $lat ms, gateway CPU $cpu µs/query"
}

ncells=$(($(wc -w <<<"$modes") * $(wc -w <<<"$clients")))
log "${#paths[@]} paths x $ncells cells x $R rounds x ${T}s ≈ $((${#paths[@]} * ncells * R * (T + 1) / 60 + 1)) min"
for p in "${paths[@]}"; do
	(. "$work/$p.env" && pgbench -n -f "$work/select.sql" -c 2 -j 2 -T 2 bench >/dev/null 2>&1) || true
done
: >"$work/samples"
for r in $(seq 1 "$R"); do
	for m in $modes; do
		for c in $clients; do
			n=${#paths[@]}
			for i in $(seq 0 $((n - 1))); do
				sample "${paths[$(((i + r) % n))]}" "$m" "$c" "$r"
			done
		done
	done
done

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
stat() { awk -v p="$1" -v m="$2" -v c="$3" -v f="$4" '$1 == p && $2 == m && $3 == c && $f != "-" {print $f}' "$work/samples" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "–"; else printf f, v }'; }

{
	echo "### Masked result-heavy reads: SELECT * of $rows rows x 10 columns per query, ${T}s x $R rounds, medians"
	echo
	echo "$(nproc) CPUs; $(/usr/lib/postgresql/15/bin/postgres --version); gatehouse repo at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?"); $(date -u +%FT%TZ)"
	echo
	echo "| mode | clients | direct TPS | no policy TPS | rules only TPS | masking TPS | masking rows/s | masking / no policy | masking / rules only |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for m in $modes; do
		for c in $clients; do
			dt=$(stat direct "$m" "$c" 4) nt=$(stat gw_none "$m" "$c" 4) rt=$(stat gw_rules "$m" "$c" 4) mt=$(stat gw_mask "$m" "$c" 4)
			echo "| $m | $c | $(fmt "$dt" %.0f) | $(fmt "$nt" %.0f) | $(fmt "$rt" %.0f) | $(fmt "$mt" %.0f) | $(fmt "$(awk -v t="$mt" -v n="$rows" 'BEGIN { if (t != "") print t * n }')" %.0f) | $(ratio "$mt" "$nt") | $(ratio "$mt" "$rt") |"
		done
	done
	echo
	echo "Gateway CPU per query (user + system, µs; medians), less sensitive to other load than TPS:"
	echo
	echo "| mode | clients | no policy | rules only | masking | masking − rules only | per row |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for m in $modes; do
		for c in $clients; do
			nc=$(stat gw_none "$m" "$c" 6) rc=$(stat gw_rules "$m" "$c" 6) mc=$(stat gw_mask "$m" "$c" 6)
			d=$(awk -v a="$mc" -v b="$rc" 'BEGIN { if (a != "" && b != "") print a - b }')
			echo "| $m | $c | $(fmt "$nc" %.0f) | $(fmt "$rc" %.0f) | $(fmt "$mc" %.0f) | $(fmt "$d" %.0f) | $(fmt "$(awk -v d="$d" -v n="$rows" 'BEGIN { if (d != "") print d / n }')" %.2f) |"
		done
	done
	echo
	echo "masking: card_number last4, email email-domain, entities [credit_card, email, phone, us_ssn, iban, secret] on notes; rules only: the same policy without masking."
} >"$work/table.md"
cat "$work/table.md"
if [[ -n $outfile ]]; then cp "$work/table.md" "$outfile"; log "wrote $outfile"; fi
if [[ -n $cpuprofile ]]; then
	"$root/scripts/start-gatehouse.sh" --stop "$work/gw_mask"
	log "CPU profile of the masking gateway: $cpuprofile (go tool pprof $bin $cpuprofile)"
fi
