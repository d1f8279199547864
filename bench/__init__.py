"""confpy's benchmark suite (issue 8): run with ``python -m bench`` (see bench/README.md).

Each benchmark starts what it needs (etcd on loopback with a temporary data dir, its
data, confpy as a subprocess exactly as an operator runs it), repeats, prints medians
(p50/p99 for latencies) and peak RSS, and writes a JSON result into ``bench/results/``.
"""
