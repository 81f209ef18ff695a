"""`python -m bench`: the benchmark's command line (bench/cli.py)."""

from bench.cli import main

raise SystemExit(main())
