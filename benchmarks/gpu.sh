#!/usr/bin/env bash
# GPU readiness (issue 15, item 6): on a CUDA machine, in under 8 minutes in all,
#   1. the test suite's CUDA-marked tests (training on CUDA, bf16/fp16 autocast, exact resume with the CUDA RNG),
#   2. the speedrun preset on the GPU: time to 94% test accuracy, read from its metrics.jsonl,
#   3. the tutorial workload (10 epochs, the tutorial's settings) on the GPU,
# and writes the figures to benchmarks/results/gpu-<time>.md (and prints them).
#
#   bash benchmarks/gpu.sh                       # data: $TRAINLAB_DATA_DIR, else ./data (never downloaded)
#   PYTHON=/opt/torch/.venv/bin/python3 bash benchmarks/gpu.sh
#
# The interpreter: $PYTHON, else .venv/bin/python, else python3; when it cannot import trainlab and pytest,
# a venv .venv-gpu is made that sees the machine's own packages (its CUDA torch: nothing large to download) and
# `pip install -e '.[test]'` goes into it; on a machine without a package index, trainlab alone is installed
# into it without its dependencies, which the machine must then have.
# Each stage gets at most its share of the 8 minutes and what is left of them; a stage that fails or runs out
# of time is reported as such, and the stages after it still run.
set -uo pipefail
cd "$(dirname "$0")/.."

BUDGET_SECONDS=${BUDGET_SECONDS:-470} # the whole script, set-up included: under 8 minutes
DEVICE=${DEVICE:-cuda}                 # DEVICE=cpu: a smoke test of this script on a machine without a GPU
START=$(date +%s)
DATA_DIR="${TRAINLAB_DATA_DIR:-./data}"
STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p benchmarks/results
RESULTS="benchmarks/results/gpu-$STAMP.md"
WORK=$(mktemp -d -t trainlab-gpu-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

say() { echo "$*" | tee -a "$RESULTS"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds_since() { printf "%d.%d" $((($(now_ms) - $1) / 1000)) $(((($(now_ms) - $1) % 1000) / 100)); }
share() { # the timeout for a stage: its cap, or what is left of the budget (0: none left)
	local remaining=$((BUDGET_SECONDS - ($(date +%s) - START)))
	((remaining < 0)) && remaining=0
	((remaining < $1)) && echo "$remaining" || echo "$1"
}
stopped_note() { [[ $1 == 124 ]] && echo " (stopped at its $2 s limit)"; }

# --- the interpreter --------------------------------------------------------------------------------------------
usable() { "$1" -c "import trainlab, pytest, torch" >/dev/null 2>&1; }
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
	for candidate in .venv/bin/python .venv-gpu/bin/python python3; do
		if command -v "$candidate" >/dev/null 2>&1 && usable "$candidate"; then
			PY=$candidate
			break
		fi
	done
fi
if [[ -z "$PY" ]] || ! usable "$PY"; then
	echo "setting up .venv-gpu (pip install -e '.[test]') ..." >&2
	"${PY:-python3}" -m venv --system-site-packages .venv-gpu || exit 1
	PY=.venv-gpu/bin/python
	if ! "$PY" -m pip install -q -e '.[test]'; then
		echo "no package index here: installing trainlab without its dependencies" >&2
		"$PY" -m pip install -q --no-deps --no-build-isolation -e . || exit 1
	fi
	usable "$PY" || {
		echo "$PY cannot import trainlab, pytest and torch; install them (pip install -e '.[test]')" >&2
		exit 1
	}
fi
if [[ $DEVICE == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
	echo "torch.cuda.is_available() is false with $PY: this script is for a CUDA machine" >&2
	exit 1
fi
if [[ ! -e "$DATA_DIR/FashionMNIST/raw/train-images-idx3-ubyte" && ! -e "$DATA_DIR/FashionMNIST/raw/train-images-idx3-ubyte.gz" ]]; then
	echo "no Fashion-MNIST under $DATA_DIR/FashionMNIST/raw: set TRAINLAB_DATA_DIR or copy it into ./data" >&2
	exit 1
fi
DATA_DIR=$(cd "$DATA_DIR" && pwd)
export TRAINLAB_DATA_DIR="$DATA_DIR" PYTHONUNBUFFERED=1

say "# trainlab on a GPU, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say ""
say "$("$PY" -c 'import os, platform, torch, trainlab
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    where = f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs), CUDA {torch.version.cuda}"
else:
    where = f"no GPU: {os.cpu_count()} CPU cores"
print(f"{where}, torch {torch.__version__}, Python {platform.python_version()}, trainlab {trainlab.__version__}")')"
say "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); interpreter $PY"
say ""

# --- 1. the CUDA-marked tests -------------------------------------------------------------------------------------
seconds=$(share 150)
began=$(now_ms)
timeout --kill-after=15 "$seconds" "$PY" -m pytest -m cuda tests/test_cuda.py -rs -q -p no:cacheprovider >"$WORK/tests.log" 2>&1
status=$?
say "## CUDA tests: \`pytest -m cuda tests/test_cuda.py\`"
say ""
say "exit status $status$(stopped_note $status "$seconds") in $(seconds_since "$began") s: $(tail -n 1 "$WORK/tests.log")"
grep -E "^(FAILED|ERROR|SKIPPED)" "$WORK/tests.log" | sed 's/^/    /' | tee -a "$RESULTS"
say ""

# --- 2. and 3.: whole training processes ------------------------------------------------------------------------
train() { # name, cap in seconds, train flags...: runs `trainlab train`, then reports from its metrics.jsonl
	local name=$1 cap=$2
	shift 2
	local seconds began status
	seconds=$(share "$cap")
	say "## $name: \`trainlab train $* --device $DEVICE\`"
	say ""
	if ((seconds == 0)); then
		say "not run: the $BUDGET_SECONDS s budget is spent"
		say ""
		return
	fi
	began=$(now_ms)
	timeout --kill-after=15 "$seconds" "$PY" -m trainlab train "$@" --device "$DEVICE" --data-dir "$DATA_DIR" --no-download \
		--run-dir "$WORK/$name" --quiet >"$WORK/$name.log" 2>&1
	status=$?
	say "exit status $status$(stopped_note $status "$seconds"), wall $(seconds_since "$began") s (start-up, data and reports included)"
	"$PY" - "$WORK/$name/metrics.jsonl" <<'EOF' | tee -a "$RESULTS"
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1])]
except OSError:
    print("no metrics.jsonl: the run did not finish an epoch")
    sys.exit(0)
elapsed, reached = 0.0, None
for row in rows:
    elapsed += row["machine_seconds"]  # the epoch's training and testing, seconds
    if reached is None and row["test_accuracy"] >= 0.94:
        reached = (row["epoch"], elapsed)
print(f"{len(rows)} epochs, final test accuracy {100 * rows[-1]['test_accuracy']:.2f}%, "
      f"{elapsed:.1f} s in epochs, {rows[-1]['machine_samples_per_second']:,.0f} training images/s in the last")
print("94% test accuracy: " + (f"after epoch {reached[0]}, {reached[1]:.1f} s of epochs" if reached else "not reached"))
print("per epoch: " + " ".join(f"{100 * row['test_accuracy']:.1f}" for row in rows))
EOF
	[[ $status == 0 ]] || tail -n 3 "$WORK/$name.log" | sed 's/^/    /' | tee -a "$RESULTS"
	say ""
}
train speedrun 180 --preset speedrun --time-budget 120  # the preset, its 300 s budget cut to fit this stage
train tutorial 120 --epochs 10

say "total $(($(date +%s) - START)) s of the $BUDGET_SECONDS s budget; figures in $RESULTS"
