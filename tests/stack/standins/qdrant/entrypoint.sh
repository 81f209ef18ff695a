#!/usr/bin/env bash
# The qdrant/qdrant image's ./entrypoint.sh, as far as the stack relies on it: a bash script in
# the working directory /qdrant that starts ./qdrant with the arguments it was given.
./qdrant "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM
trap 'kill -INT "$pid" 2>/dev/null' INT
wait "$pid"
