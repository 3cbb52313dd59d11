#!/usr/bin/env bash
# RocksDB's own db_bench on the data size of a strom-bench primary-key run: the ceiling of
# what one RocksDB on this machine does without any network, encoding or server around it.
#
#   integration/peer/db_bench.sh --num 1000000 [--value-size 64] [--key-size 20]
#       [--threads 2] [--batch 1000] [--seconds 10] [--cache-bytes 268435456] [--dir DIR] [--db-bench PATH]
#       [--fill filluniquerandom|fillrandom]
#
# Runs, on one fresh database in DIR (default: a temporary directory, removed at the end):
#   filluniquerandom each of the --num keys exactly once, in random order (WAL off: Strom's
#                    bucket log is its WAL), like strom-bench's loads; every key read exists
#   waitforcompaction  the reads start on a settled database (strom-bench waits for an idle
#                    machine before each timed scenario too)
#   readrandom       uniform point gets for --seconds, --threads threads
#   multireadrandom  MultiGet batches of --batch keys (batched API) for --seconds, if this
#                    db_bench has it
# with the options of Strom's store: LZ4, Bloom filter 10 bits/key, data-block hash index,
# memtable whole-key Bloom filter, a HyperClockCache of --cache-bytes (strom-bench passes
# Strom's `kv.block_cache_bytes`) holding index and filter blocks (L0 ones pinned). (`--fill fillrandom` draws keys with repetition instead: then
# only ~63 % of the key range exists and readrandom misses ~37 %; db_bench prints "(found of
# reads)".)
#
# Output: db_bench's own report in the log (--log, default DIR/db_bench.log), and one line
# per benchmark on stdout:
#   db_bench: <name> ops_per_s=<n> micros_per_op=<x> p50_us=<x> p99_us=<x> p999_us=<x> found=<a>/<b>
# Needs the Debian package rocksdb-tools (apt-get install -y rocksdb-tools).
set -euo pipefail

num=1000000
fill=filluniquerandom
value_size=64
key_size=20
threads=2
batch=1000
seconds=10
cache_bytes=$((256 * 1024 * 1024))
dir=""
db_bench="${DB_BENCH:-db_bench}"
log=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --num) num="$2"; shift 2 ;;
        --value-size) value_size="$2"; shift 2 ;;
        --key-size) key_size="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --cache-bytes) cache_bytes="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --fill) fill="$2"; shift 2 ;;
        --db-bench) db_bench="$2"; shift 2 ;;
        --log) log="$2"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "db_bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if ! command -v "$db_bench" >/dev/null 2>&1; then
    echo "db_bench.sh: $db_bench not found (apt-get install -y rocksdb-tools)" >&2
    exit 3
fi

cleanup=""
if [[ -z "$dir" ]]; then
    dir="$(mktemp -d -t strom-dbbench-XXXXXX)"
    cleanup="$dir"
fi
trap '[[ -n "$cleanup" ]] && rm -rf "$cleanup"' EXIT
mkdir -p "$dir"
db="$dir/db"
rm -rf "$db"
[[ -n "$log" ]] || log="$dir/db_bench.log"
: > "$log"

common=(
    --db="$db" --num="$num" --key_size="$key_size" --value_size="$value_size"
    --compression_type=lz4 --bloom_bits=10 --cache_size="$cache_bytes"
    --cache_index_and_filter_blocks=true --pin_l0_filter_and_index_blocks_in_cache=true
    --use_data_block_hash_index=true --data_block_hash_table_util_ratio=0.75
    --memtable_bloom_size_ratio=0.05 --memtable_whole_key_filtering=true
    --cache_type=hyper_clock_cache --max_background_jobs=2 --histogram=true
    --statistics=false --seed=42
)

# Prints the summary line of benchmark $1 from db_bench output file $2 (plain POSIX tools:
# Debian's default awk is mawk).
report() {
    local name="$1" out="$2" line pct found
    line="$(grep -E "^$name +:" "$out" | tail -n 1)"
    [[ -n "$line" ]] || return 1
    pct="$(grep -m 1 '^Percentiles:' "$out" || true)"
    found="$(sed -n 's/.*(\([0-9]*\) of \([0-9]*\) found).*/\1\/\2/p' <<< "$line")"
    set -- $line
    local micros="$3" ops="$5"
    set -- $pct
    echo "db_bench: $name ops_per_s=$ops micros_per_op=$micros p50_us=${3:--} p99_us=${7:--} p999_us=${9:--} found=${found:--}"
}

run() {
    local name="$1"; shift
    local out="$dir/$name.out"
    echo "+ $db_bench --benchmarks=$name $*" >> "$log"
    "$db_bench" "${common[@]}" --benchmarks="$name" "$@" > "$out" 2>&1 || {
        cat "$out" >> "$log"
        echo "db_bench.sh: $name failed (see $log)" >&2
        return 1
    }
    cat "$out" >> "$log"
    report "$name" "$out"
}

run "$fill" --threads=1 --disable_wal=true --use_existing_db=false
echo "+ $db_bench --benchmarks=waitforcompaction" >> "$log"
wait_start=$(date +%s)
"$db_bench" "${common[@]}" --benchmarks=waitforcompaction --use_existing_db=true >> "$log" 2>&1
echo "db_bench: waitforcompaction seconds=$(( $(date +%s) - wait_start ))"
run readrandom --threads="$threads" --use_existing_db=true --duration="$seconds"
help_text="$("$db_bench" --help 2>&1 || true)"
if [[ "$help_text" == *multireadrandom* ]]; then
    run multireadrandom --threads="$threads" --use_existing_db=true --duration="$seconds" \
        --batch_size="$batch" --multiread_batched=true
else
    echo "db_bench: multireadrandom not available in this db_bench"
fi
