#!/usr/bin/env bash
# Profile a server under the 8-client find workload with py-spy and print where its time goes.
#
#   bench/profile.sh              # ours only (default)
#   bench/profile.sh official     # the official server only
#   bench/profile.sh both         # both, and the usual side-by-side tables
#   PROFILE_FINDS=4000 bench/profile.sh
#
# What it does: `python -m bench --phases compare` runs its normal phases (small counts here), then, on the same server
# process, attaches `py-spy record --format raw --threads --subprocesses --rate 200 --pid <server>`
# while 8 clients send PROFILE_FINDS distinct finds, stops py-spy with SIGINT and summarizes the
# stacks (top categories, top leaf functions, split by thread). py-spy is installed once into
# ${BENCH_CACHE:-~/.cache/qdrant-mcp-bench}/tools-venv (or set BENCH_PYSPY=/path/to/py-spy).
# Raw stacks land in bench/results/profile-<server>.txt: feed them to flamegraph.pl, or to
# https://www.speedscope.app (it reads this "collapsed stacks" format) for an interactive view.
#
# By hand, against any running server (root, or ptrace allowed):
#   py-spy top    --pid <pid>                          # live view
#   py-spy dump   --pid <pid>                          # one snapshot of every thread
#   py-spy record --pid <pid> --format speedscope -o prof.json --threads --rate 200   # Ctrl-C to stop
# Note: py-spy only sees Python threads; onnxruntime's own worker threads are native, so ONNX time
# shows as the calling thread sitting in Session.run. py-spy's idle detection is unreliable on a loaded
# 2-core machine, so the benchmark drops samples whose leaf is a blocking wait (Condition.wait, select, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${BENCH_PYTHON:-$repo/.venv/bin/python}
which=${1:-ours}
finds=${PROFILE_FINDS:-2000}
only=()
case $which in
  ours | official) only=(--only "$which") ;;
  both) ;;
  *)
    echo "usage: $0 [ours|official|both]" >&2
    exit 2
    ;;
esac
cd "$repo"
exec "$py" -m bench --phases compare "${only[@]}" --profile --profile-finds "$finds" \
  --stores 300 --finds 300 --many 300 --noop 100 --no-modern \
  --json-out "$here/results/profile-$which.json" --md-out "$here/results/profile-$which.md"
