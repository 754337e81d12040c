#!/usr/bin/env bash
# bench/pgbench.sh — select-only pgbench throughput and latency of one
# throwaway PostgreSQL reached three ways: direct, through PgBouncer (session
# pooling) and through gatehouse, measured in the same run (DESIGN §6).
#
# Cells: -M simple and -M prepared, each at -c 1 and -c 8 (-j = -c). Every
# cell runs once per path per round, the paths interleaved, for -R rounds;
# the table reports medians, so a burst of machine noise hits one sample of
# every path instead of one whole path.
#
# Usage: bench/pgbench.sh [-T SECONDS] [-R ROUNDS] [-s SCALE] [-c "1 8"]
#                         [-M "simple prepared"] [-o FILE.md] [--no-gatehouse]
#                         [--policies FILE]  (also measure gatehouse with FILE's policies loaded)
#   -T  seconds per sample (default 15)      -R  rounds (default 3)
#   -s  pgbench scale (default 10)           -o  also write the markdown table to FILE
#   --no-gatehouse / --no-pgbouncer  leave a path out (gatehouse is left out
#   automatically, with a note, when bin/gatehouse cannot serve yet)
# Env: GATEHOUSE_BIN (default bin/gatehouse). Never a pass/fail test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
T=15
R=3
scale=10
clients="1 8"
modes="simple prepared"
outfile=""
policies="" # with --policies FILE, a second gatehouse with those policies loaded is measured too
use_gh=auto
use_pgb=1
while [[ $# -gt 0 ]]; do
	case $1 in
	-T) T=$2; shift 2 ;;
	-R) R=$2; shift 2 ;;
	-s) scale=$2; shift 2 ;;
	-c) clients=$2; shift 2 ;;
	-M) modes=$2; shift 2 ;;
	-o) outfile=$2; shift 2 ;;
	--no-gatehouse) use_gh=0; shift ;;
	--no-pgbouncer) use_pgb=0; shift ;;
	--policies) policies=$2; shift 2 ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "pgbench.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
bin=${GATEHOUSE_BIN:-$root/bin/gatehouse}
log() { echo "bench: $*" >&2; }

if [[ $use_pgb -eq 1 ]] && ! command -v pgbouncer >/dev/null && [[ ! -x /usr/sbin/pgbouncer ]]; then
	if [[ $(id -u) -eq 0 ]]; then
		log "installing pgbouncer"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
	else
		log "pgbouncer not installed and not root: leaving it out"
		use_pgb=0
	fi
fi
if [[ $use_gh == auto ]]; then
	if "$root/scripts/start-gatehouse.sh" --check --bin "$bin"; then use_gh=1; else
		use_gh=0
		log "bin/gatehouse cannot serve yet: leaving the gatehouse path out"
	fi
fi

work=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
chmod 0755 "$work"
cleanup() {
	"$root/scripts/start-gatehouse.sh" --stop "$work/gw" 2>/dev/null || true
	"$root/scripts/start-gatehouse.sh" --stop "$work/gwp" 2>/dev/null || true
	"$root/scripts/start-pgbouncer.sh" --stop "$work/pgb" 2>/dev/null || true
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
paths=(direct)
cp "$work/pg/pg.env" "$work/direct.env"
if [[ $use_pgb -eq 1 ]]; then
	"$root/scripts/start-pgbouncer.sh" "$work/pgb" "$work/pg/pg.env" >/dev/null
	cp "$work/pgb/pgbouncer.env" "$work/pgbouncer.env"
	paths+=(pgbouncer)
fi
if [[ $use_gh -eq 1 ]]; then
	"$root/scripts/start-gatehouse.sh" --bin "$bin" --connection bench --subject bench "$work/gw" "$work/pg/pg.env" >/dev/null
	cp "$work/gw/gatehouse.env" "$work/gatehouse.env"
	paths+=(gatehouse)
	if [[ -n $policies ]]; then
		"$root/scripts/start-gatehouse.sh" --bin "$bin" --policies "$policies" --connection bench --subject bench "$work/gwp" "$work/pg/pg.env" >/dev/null
		cp "$work/gwp/gatehouse.env" "$work/gatehouse_policy.env"
		paths+=(gatehouse_policy)
	fi
fi

# sample PATH MODE CLIENTS ROUND: one pgbench run; appends "path mode c tps lat round" to samples.
sample() {
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

ncells=$(($(wc -w <<<"$modes") * $(wc -w <<<"$clients")))
log "${#paths[@]} paths x $ncells cells x $R rounds x ${T}s ≈ $((${#paths[@]} * ncells * R * (T + 1) / 60 + 1)) min"
# A short warm-up per path so the first sample doesn't pay for cold caches and
# the gateway's first-parse costs.
for p in "${paths[@]}"; do
	(. "$work/$p.env" && pgbench -n -S -c 2 -j 2 -T 2 bench >/dev/null 2>&1) || true
done
: >"$work/samples"
for r in $(seq 1 "$R"); do
	for m in $modes; do
		for c in $clients; do
			# Rotate the path order each round so no path always runs first.
			n=${#paths[@]}
			for i in $(seq 0 $((n - 1))); do
				sample "${paths[$(((i + r) % n))]}" "$m" "$c" "$r"
			done
		done
	done
done

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
stat() { # PATH MODE CLIENTS FIELD(4=tps,5=lat)
	awk -v p="$1" -v m="$2" -v c="$3" -v f="$4" '$1 == p && $2 == m && $3 == c {print $f}' "$work/samples" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b }'; }
added() { awk -v a="$1" -v d="$2" 'BEGIN { if (a == "" || d == "") print ""; else printf "%.4f", a - d }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "–"; else printf f, v }'; }
# paired MODE CLIENTS: the median over rounds of each round's own added-latency
# ratio (gatehouse − direct) / (pgbouncer − direct). Latency on a shared VM
# drifts between rounds; a round's three samples ran minutes apart at most,
# so the paired figure is less sensitive to that drift than the ratio of
# medians.
paired() {
	awk -v m="$1" -v c="$2" '$2 == m && $3 == c {lat[$1, $6] = $5; r[$6] = 1}
		END {for (k in r) if ((("direct", k) in lat) && (("pgbouncer", k) in lat) && (("gatehouse", k) in lat) && lat["pgbouncer", k] > lat["direct", k])
			print (lat["gatehouse", k] - lat["direct", k]) / (lat["pgbouncer", k] - lat["direct", k])}' "$work/samples" | median
}

{
	echo "### pgbench -S (select-only), scale $scale, ${T}s x $R rounds, medians"
	echo
	echo "$(nproc) CPUs; $(/usr/lib/postgresql/15/bin/postgres --version); $(pgbouncer --version 2>/dev/null | head -n1 || true); gatehouse repo at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?") ($bin); $(date -u +%FT%TZ)"
	echo
	echo "| mode | clients | direct TPS | direct lat ms | pgbouncer TPS | pgbouncer lat ms | gatehouse TPS | gatehouse lat ms | gatehouse/direct TPS | pgbouncer/direct TPS | gatehouse added lat / pgbouncer added lat | same, paired per round |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for m in $modes; do
		for c in $clients; do
			dt=$(stat direct "$m" "$c" 4) dl=$(stat direct "$m" "$c" 5)
			bt=$(stat pgbouncer "$m" "$c" 4) bl=$(stat pgbouncer "$m" "$c" 5)
			gt=$(stat gatehouse "$m" "$c" 4) gl=$(stat gatehouse "$m" "$c" 5)
			ga=$(added "$gl" "$dl") ba=$(added "$bl" "$dl")
			echo "| $m | $c | $(fmt "$dt" %.0f) | $(fmt "$dl" %.3f) | $(fmt "$bt" %.0f) | $(fmt "$bl" %.3f) | $(fmt "$gt" %.0f) | $(fmt "$gl" %.3f) | $(ratio "$gt" "$dt") | $(ratio "$bt" "$dt") | $(ratio "$ga" "$ba") | $(fmt "$(paired "$m" "$c")" %.2f) |"
		done
	done
	echo
	echo "added latency = path's average latency − direct's; pgbench runs on the same machine and competes for its CPUs."
	[[ $use_gh -eq 1 ]] || echo "gatehouse path not measured (binary absent or left out)."
	if [[ -n $policies && $use_gh -eq 1 ]]; then
		echo
		echo "#### with policies loaded ($(basename "$policies"))"
		echo
		echo "| mode | clients | gatehouse TPS | gatehouse + policies TPS | policies/no policies |"
		echo "|---|---:|---:|---:|---:|"
		for m in $modes; do
			for c in $clients; do
				gt=$(stat gatehouse "$m" "$c" 4) pt=$(stat gatehouse_policy "$m" "$c" 4)
				echo "| $m | $c | $(fmt "$gt" %.0f) | $(fmt "$pt" %.0f) | $(ratio "$pt" "$gt") |"
			done
		done
	fi
} >"$work/table.md"
cat "$work/table.md"
if [[ -n $outfile ]]; then cp "$work/table.md" "$outfile"; log "wrote $outfile"; fi
