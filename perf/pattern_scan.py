"""Adversarial scan of every pattern of the installed botocore's models (all services).

    .venv/bin/python perf/pattern_scan.py                 # every service botocore ships (minutes)
    .venv/bin/python perf/pattern_scan.py --services iot proton

The unit test ``tests/model/test_pattern_scan.py`` scans the five pinned models; this extends the
same scan to the ~4,700 distinct patterns of all botocore services, too long for the unit suite.
For each pattern it builds the values of ``tests/adversarial.py`` at the longest length any shape
using the pattern allows (10,000 characters where none sets a maximum, capped by ``--cap``),
times ``pattern_matcher(pattern).fullmatch`` on each (outliers re-measured, best of four), and
with ``--agree`` also checks the answer against Python's ``re`` on short values (1-11 characters,
where backtracking stays cheap). It prints the engines, the fallback patterns, the slowest values,
and exits 1 if any value took more than 5 ms + 0.1 µs per character, or any answer differed.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import botocore.loaders
from adversarial import adversarial_values

from harness.model import UnsupportedPattern, compile_pattern, pattern_matcher

LIMIT_S, PER_CHAR_S = 0.005, 100e-9


def botocore_patterns(services: list[str] | None) -> dict[str, int]:
    """Each pattern with the longest length a shape using it allows (``None``: unbounded)."""
    loader = botocore.loaders.Loader()
    out: dict[str, int] = {}
    for service in services or loader.list_available_services("service-2"):
        model = loader.load_service_model(service, "service-2")
        for shape in model["shapes"].values():
            pattern = shape.get("pattern")
            if pattern and shape.get("type") == "string":
                longest = int(shape.get("max", 10_000))
                out[pattern] = max(out.get(pattern, 0), longest)
    return out


def timed(pattern: str, value: str) -> float:
    matcher = pattern_matcher(pattern)
    best = float("inf")
    for attempt in range(4):
        start = time.perf_counter()
        matcher.fullmatch(value)
        best = min(best, time.perf_counter() - start)
        if attempt == 0 and best <= LIMIT_S + PER_CHAR_S * len(value):
            break
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", nargs="*", help="botocore service names (default: all)")
    parser.add_argument("--cap", type=int, default=100_000, help="longest value tried")
    parser.add_argument("--agree", action="store_true", help="also compare answers with re")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # "[[" and "&&" in some models' classes
    patterns = botocore_patterns(args.services)
    engines: Counter[str] = Counter()
    fallbacks: dict[str, tuple[str, ...]] = {}
    worst: list[tuple[float, float, str, int]] = []
    disagreements: list[tuple[str, str]] = []
    started = time.perf_counter()
    for pattern, longest in sorted(patterns.items()):
        try:
            matcher = pattern_matcher(pattern)
        except UnsupportedPattern:
            engines["unsupported"] += 1
            continue
        engines[matcher.engine] += 1
        if matcher.engine == "re2+re":
            fallbacks[pattern] = matcher.widened
        length = min(longest, args.cap)
        for value in adversarial_values(pattern, length):
            elapsed = timed(pattern, value)
            worst.append((elapsed / (LIMIT_S + PER_CHAR_S * length), elapsed, pattern, length))
        if args.agree:
            regex = compile_pattern(pattern)
            disagreements.extend(
                (pattern, value)
                for short in (1, 2, 3, 6, 11)
                for value in adversarial_values(pattern, short)
                if matcher.fullmatch(value) != (regex.fullmatch(value) is not None)
            )
    worst.sort(reverse=True)
    print(f"{len(patterns)} patterns in {time.perf_counter() - started:.0f} s: {dict(engines)}")
    print(f"{len(fallbacks)} need re after RE2 (re2+re):")
    for pattern, why in sorted(fallbacks.items())[:20]:
        print(f"  {', '.join(why)}: {pattern[:100]}")
    print("slowest values (share of the limit, time, pattern, length):")
    for share, elapsed, pattern, length in worst[:10]:
        print(f"  {share:5.2f}  {elapsed * 1e3:8.2f} ms  {length:>7}  {pattern[:70]}")
    if args.agree:
        print(f"answers that differ from re: {len(disagreements)}")
        for pattern, value in disagreements[:10]:
            print(f"  {pattern[:70]!r} on {value[:30]!r}")
    over = [w for w in worst if w[0] > 1]
    print(f"values over the limit: {len(over)}")
    return 1 if over or disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
