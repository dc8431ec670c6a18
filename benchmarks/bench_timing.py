"""Benchmark timers: several callables timed in alternating rounds, so a noisy machine slows them alike."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def time_alternating(runs: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds per call of each runner. Rounds alternate between the runners, so a noisy
    machine slows them alike; ``warmup`` untimed rounds go first."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def medians(times: Mapping[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}
