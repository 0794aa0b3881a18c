#!/usr/bin/env bash
# The accuracy-latency frontier on the test split (issue 11): the default preset, every method
# on the same problems, interleaved problem by problem, then SPECS and target beam search at
# fixed budgets. Resumable: rerun to continue; each folder keeps its rows, settings, summary
# and plot. Hours on 2 CPU cores: run on a quiet machine, nothing else timing or testing.
#
#   HF_HUB_OFFLINE=1 bash benchmarks/test_frontier.sh [main|more|budget-30|budget-60 ...]
#
# main: SPECS, target beam search and both greedy baselines (what a user gets by calling a
# model directly); more: rsd and draft beam search added to the same folder (a resume: rows
# already there are kept).
#
# The knobs are the tune runs' (benchmarks/results/tune-levers/*/settings.json; beta and
# accept_threshold are the defaults chosen there), so test
# figures compare with the tune figures the defaults were chosen on.
set -euo pipefail
cd "$(dirname "$0")/.."
SPECS=(.venv/bin/python -m specs_engine.app.cli bench --split test --n 4 --beam-width 2
       --max-steps 12 --max-new-tokens 512 --max-step-tokens 64 --seed 0)
OUT=benchmarks/results/test-frontier
for part in "${@:-main more budget-30 budget-60}"; do
    for stage in $part; do
        case "$stage" in
            main) "${SPECS[@]}" --out "$OUT/main" \
                      --methods specs,beam_search:target,greedy:target,greedy:draft ;;
            more) "${SPECS[@]}" --out "$OUT/main" --methods rsd,beam_search:draft ;;
            budget-30) "${SPECS[@]}" --out "$OUT/budget-30s" --budget-s 30 \
                      --methods specs,beam_search:target,greedy:target ;;
            budget-60) "${SPECS[@]}" --out "$OUT/budget-60s" --budget-s 60 \
                      --methods specs,beam_search:target,greedy:target ;;
            *) echo "unknown stage $stage: use main, more, budget-30, budget-60" >&2; exit 2 ;;
        esac
    done
done
