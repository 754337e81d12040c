#!/usr/bin/env bash
# bench/audit.sh — what "durable before it runs" costs: pgbench -S through
# two gateways in the same run, one with audit.durability journal (the
# default: every statement's decision is written to the decision journal
# before it is forwarded) and one with audit.durability off (the decision is
# stored only with its outcome, batched). Both write the same audit store
# (SQLite, chained, signed). Cells: -M simple -c 8 (the issue's ratio) and
# -M prepared -c 1 (latency) by default. Paths interleave, the order rotating
# each round; the table reports medians over -R rounds.
#
# Usage: bench/audit.sh [-T SECONDS] [-R ROUNDS] [-s SCALE] [-o FILE.md]
#                       [--cells "simple:8 prepared:1"] [--fsync]
#   --fsync  also measure audit.journal_fsync: true (a third path)
# Env: GATEHOUSE_BIN (default bin/gatehouse). Never a pass/fail test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
T=15
R=5
scale=10
cells="simple:8 prepared:1"
outfile=""
fsync=0
while [[ $# -gt 0 ]]; do
	case $1 in
	-T) T=$2; shift 2 ;;
	-R) R=$2; shift 2 ;;
	-s) scale=$2; shift 2 ;;
	-o) outfile=$2; shift 2 ;;
	--cells) cells=$2; shift 2 ;;
	--fsync) fsync=1; shift ;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "audit.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
bin=${GATEHOUSE_BIN:-$root/bin/gatehouse}
log() { echo "bench: $*" >&2; }
"$root/scripts/start-gatehouse.sh" --check --bin "$bin" || { log "$bin cannot serve (make build)"; exit 1; }

work=$(mktemp -d /tmp/gatehouse-bench-audit.XXXXXX)
chmod 0755 "$work"
paths=(journal off)
[[ $fsync -eq 1 ]] && paths+=(fsync)
cleanup() {
	for p in "${paths[@]}"; do "$root/scripts/start-gatehouse.sh" --stop "$work/gw-$p" 2>/dev/null || true; done
	"$root/scripts/start-postgres.sh" --stop "$work/pg" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

log "starting PostgreSQL"
"$root/scripts/start-postgres.sh" "$work/pg" >/dev/null
(
	. "$work/pg/pg.env"
	psql -X -q -d postgres -c "CREATE DATABASE bench"
	log "pgbench -i -s $scale"
	pgbench -i -q -s "$scale" bench >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
)
for p in "${paths[@]}"; do
	case $p in
	journal) extra="durability: journal" ;;
	off) extra="durability: off" ;;
	fsync) extra="journal_fsync: true" ;;
	esac
	GATEHOUSE_AUDIT_YAML=$extra "$root/scripts/start-gatehouse.sh" --bin "$bin" --connection bench --subject bench "$work/gw-$p" "$work/pg/pg.env" >/dev/null
	cp "$work/gw-$p/gatehouse.env" "$work/$p.env"
done

sample() { # PATH MODE CLIENTS ROUND
	local out=$work/run-$1-$2-$3-$4.log
	(
		. "$work/$1.env"
		pgbench -n -S -M "$2" -c "$3" -j "$3" -T "$T" bench >"$out" 2>&1
	) || { log "pgbench failed on $1 -M $2 -c $3:"; tail -n 5 "$out" >&2; return 0; }
	local tps lat
	tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$out" | tail -n1)
	lat=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$out")
	echo "$1 $2 $3 $tps $lat $4" >>"$work/samples"
	log "round $4: $1 -M $2 -c $3: $tps tps, $lat ms"
}

for p in "${paths[@]}"; do
	(. "$work/$p.env" && pgbench -n -S -c 2 -j 2 -T 2 bench >/dev/null 2>&1) || true
done
: >"$work/samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$R"); do
	for cell in $cells; do
		m=${cell%%:*} c=${cell#*:}
		n=${#paths[@]}
		for i in $(seq 0 $((n - 1))); do
			sample "${paths[$(((i + r) % n))]}" "$m" "$c" "$r"
		done
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
stat() { awk -v p="$1" -v m="$2" -v c="$3" -v f="$4" '$1 == p && $2 == m && $3 == c {print $f}' "$work/samples" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.3f", a / b }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "–"; else printf f, v }'; }
# pairedratio MODE CLIENTS: median over rounds of journal/off TPS within
# the round (the two samples ran back to back), which cancels load that
# drifts between rounds.
pairedratio() {
	awk -v m="$1" -v c="$2" '$2 == m && $3 == c {k = $6; if ($1 == "journal") j[k] = $4; else if ($1 == "off") o[k] = $4}
		END {for (k in j) if (k in o && o[k] > 0) print j[k] / o[k]}' "$work/samples" | median
}
diffus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "–"; else printf "%+.1f", (a - b) * 1000 }'; }

{
	echo "### pgbench -S through gatehouse: audit.durability journal vs off, scale $scale, ${T}s x $R rounds, medians"
	echo
	echo "$(nproc) CPUs, load average $load_before before / $load_after after; gatehouse at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?"); $(date -u +%FT%TZ)"
	echo
	head="| mode | clients | journal TPS | journal lat ms | off TPS | off lat ms | journal/off TPS | journal/off TPS, paired per round | journal − off lat µs |"
	sep="|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	if [[ $fsync -eq 1 ]]; then head+=" fsync TPS | fsync/off TPS |"; sep+="---:|---:|"; fi
	echo "$head"
	echo "$sep"
	for cell in $cells; do
		m=${cell%%:*} c=${cell#*:}
		jt=$(stat journal "$m" "$c" 4) jl=$(stat journal "$m" "$c" 5)
		ot=$(stat off "$m" "$c" 4) ol=$(stat off "$m" "$c" 5)
		row="| $m | $c | $(fmt "$jt" %.0f) | $(fmt "$jl" %.3f) | $(fmt "$ot" %.0f) | $(fmt "$ol" %.3f) | $(ratio "$jt" "$ot") | $(fmt "$(pairedratio "$m" "$c")" %.3f) | $(diffus "$jl" "$ol") |"
		if [[ $fsync -eq 1 ]]; then
			ft=$(stat fsync "$m" "$c" 4)
			row+=" $(fmt "$ft" %.0f) | $(ratio "$ft" "$ot") |"
		fi
		echo "$row"
	done
	echo
	echo "pgbench, PostgreSQL and both gateways share the machine's CPUs; compare ratios within one run only."
} >"$work/table.md"
cat "$work/table.md"
if [[ -n $outfile ]]; then cp "$work/table.md" "$outfile"; log "wrote $outfile"; fi
