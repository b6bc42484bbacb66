#!/bin/bash
# tests/fuzz/run.sh SECONDS TARGET... - runs each libFuzzer target (built by
# `make fuzz-build`) for SECONDS, one after the other, on its corpus
# build/fuzz/corpus/TARGET (seeded from testdata/ by tests/fuzz/seeds.py; new
# inputs land there) plus the committed testdata/fuzz/seeds/TARGET and
# regressions testdata/fuzz/TARGET.  Prints executions, coverage (cov) and
# features (ft) per target; a crash is kept in build/fuzz/artifacts/TARGET/
# and makes the run fail after the other targets ran.  The full libFuzzer
# output is build/fuzz/logs/TARGET.log.
#
# FUZZ_TIMEOUT (10 s) is the time one input may take: a Dockerfile word or a
# .dockerignore pattern that needs longer is a finding (a blow-up), not slow
# luck.  Extra libFuzzer options can be given in FUZZ_ARGS.
set -u
secs=${1:?usage: run.sh SECONDS TARGET...}
shift
cd "$(dirname "$0")/../.."
python3 tests/fuzz/seeds.py build/fuzz/corpus || exit 1
failed=()
for t in "$@"; do
  dict=
  case $t in
    dockerfile|expand) dict=-dict=tests/fuzz/dockerfile.dict ;;
    oci|registry) dict=-dict=tests/fuzz/json.dict ;;
  esac
  mkdir -p "build/fuzz/corpus/$t" "build/fuzz/artifacts/$t" build/fuzz/logs
  log=build/fuzz/logs/$t.log
  echo "== $t: ${secs}s"
  # shellcheck disable=SC2086
  build/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 $dict -artifact_prefix="build/fuzz/artifacts/$t/" ${FUZZ_ARGS:-} \
    "build/fuzz/corpus/$t" $(for d in "testdata/fuzz/seeds/$t" "testdata/fuzz/$t"; do [ -d "$d" ] && echo "$d"; done) \
    >"$log" 2>&1
  rc=$?
  { grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || grep -E '^#[0-9]+' "$log"; } | tail -1
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log"
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E 'ERROR: |SUMMARY: |fuzz oracle: |Test unit written to' "$log" | head -5
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (inputs under build/fuzz/artifacts/, logs under build/fuzz/logs/)"
  exit 1
fi
