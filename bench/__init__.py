"""Passage benchmarks: every figure is a ratio of ours to a baseline measured side by side
(interleaved, repeated, medians), because the machines we run on are shared and noisy.

``python -m bench`` (full) or ``python -m bench --quick``; see docs/performance.md.
"""
