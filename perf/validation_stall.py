"""Worst event-loop stall while adversarial values are validated: old-style ``re`` vs the matcher.

    .venv/bin/python perf/validation_stall.py            # ~10 s on a quiet machine
    .venv/bin/python perf/validation_stall.py --scale 1  # the audit's full sizes (minutes)

An event loop runs a ticker (``sleep(0)`` in a loop, recording the longest gap between ticks)
while a task validates, one value per loop iteration, the audit's two inputs (a Proton S3 bucket
name of 2,400 characters, ten managed-integrations metadata values of 800 characters ending in a
newline, both scaled by ``--scale``) and, for every pinned pattern RE2 matches, adversarial values
(``tests/adversarial.py``) at its longest allowed length, capped by ``--cap``.

Each value is validated twice, in two runs:

* **old-style**: what the validator did before: the pattern compiled by Python's ``re``
  (``compile_pattern``) and matched whatever the value's length;
* **matcher**: the validator now (type, length and enum first, then ``pattern_matcher``).

It prints the worst stall of each run and their ratio, e.g.::

    worst event-loop stall: old-style re 2,154.3 ms vs matcher 0.6 ms = 3,590x
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from adversarial import adversarial_values

from harness.model import (
    SEED_SERVICES,
    Shape,
    Validator,
    compile_pattern,
    load_service,
    pattern_matcher,
)

Item = tuple[Shape, Any]


def audit_items(scale: float) -> list[Item]:
    bucket = load_service("proton").shape("S3Bucket")
    metadata = load_service("iot-managed-integrations").shape("MetaData")
    assert metadata.value is not None
    value_shape = metadata.value.shape
    return [
        (bucket, "a" * int(2400 * scale) + "!"),
        *((value_shape, "x" * int(799 * scale) + "\n") for _ in range(10)),
    ]


def derived_items(cap: int) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    for service in SEED_SERVICES:
        for shape in load_service(service).shapes.values():
            pattern = shape.pattern
            if shape.type != "string" or not pattern or pattern in seen:
                continue
            seen.add(pattern)
            if pattern_matcher(pattern).engine == "re":
                continue
            length = min(cap, int(shape.max) if shape.max is not None else cap)
            items.extend((shape, v) for v in list(adversarial_values(pattern, length))[::7])
    return items


def old_style(shape: Shape, value: Any) -> object:
    assert shape.pattern is not None
    return compile_pattern(shape.pattern).fullmatch(value)


_VALIDATOR = Validator()


def new_style(shape: Shape, value: Any) -> object:
    return _VALIDATOR.validate_shape(shape, value)


async def worst_stall(items: list[Item], check: Callable[[Shape, Any], object]) -> float:
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    for shape, value in items:
        check(shape, value)
        await asyncio.sleep(0)
    done = True
    await task
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.25, help="of the audit's sizes")
    parser.add_argument("--cap", type=int, default=200, help="longest derived value")
    args = parser.parse_args()
    items = audit_items(args.scale) + derived_items(args.cap)
    for shape, _ in items:  # compile outside the measurement, as the emulator does at start
        assert shape.pattern is not None
        compile_pattern(shape.pattern)
        _VALIDATOR.prepare(shape)
    old = asyncio.run(worst_stall(items, old_style))
    new = asyncio.run(worst_stall(items, new_style))
    print(f"{len(items)} values (audit's at scale {args.scale}, derived up to {args.cap} chars)")
    print(
        f"worst event-loop stall: old-style re {old * 1e3:,.1f} ms vs matcher "
        f"{new * 1e3:,.1f} ms = {old / new:,.0f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
