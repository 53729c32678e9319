"""Values built to make a backtracking regex engine explode on a model pattern.

The classic attack on a pattern: a long run of characters it accepts, in an order that leaves
many ways to split the run among its repeats, ended by one character that makes the match fail
(``"a" * 2400 + "!"`` against ``^[a-z0-9]+[a-z0-9-\\.]+[a-z0-9]+$``). For every pattern we build
such runs from every character class it contains (one character, and pairs of neighbouring
classes), and from repeated valid examples, each ended by a handful of characters that usually
fail. :func:`attack_requests` turns them into requests for the emulator, with the audit's two.
Used by ``tests/model/test_pattern_scan.py``, ``tests/emulator/test_no_stall.py`` and
``perf/validation_stall.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from harness.model import (
    SEED_SERVICES,
    UnsupportedPattern,
    example_value,
    load_service,
    pattern_matcher,
    regex_example,
)
from harness.model._re2_syntax import Ranges, re2_pattern

#: Characters that end a run: newline (``$`` and ``.`` differ there), punctuation, space, NUL,
#: a Java-only line terminator, a letter outside ASCII, a lone surrogate.
ENDINGS = ("\n", "!", " ", "\x00", "\u2028", "é", "\ud800")
_MAX_REPS = 12


def _members(ranges: Ranges) -> list[str]:
    """Up to two members of a set: a printable ASCII one if any, and a non-ASCII one if any."""
    out: list[str] = []
    for lo, hi in ranges:
        start = max(lo, 0x21)
        if start <= min(hi, 0x7E):
            out.append(chr(start))
            break
    for lo, hi in ranges:
        cp = max(lo, 0xA1)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xE000
        if cp <= hi:
            out.append(chr(cp))
            break
    return out or ([chr(ranges[0][0])] if ranges else [])


def representatives(pattern: str) -> list[str]:
    """One or two characters of each character class of ``pattern``, in pattern order."""
    seen: dict[str, None] = {}
    for ranges in re2_pattern(pattern).classes:
        for ch in _members(ranges):
            seen.setdefault(ch)
    return list(seen)[: _MAX_REPS * 2]


def adversarial_values(pattern: str, length: int) -> Iterator[str]:
    """Values of exactly ``length`` characters that almost match ``pattern`` (see the module)."""
    reps = representatives(pattern)
    runs = [*reps, *(a + b for a, b in itertools.pairwise(reps))]
    for seed in range(3):
        try:
            example = regex_example(pattern, min_len=1, seed=seed)
        except UnsupportedPattern:
            example = None
        if example:
            runs.append(example)
    for run in dict.fromkeys(runs):
        body = (run * (length // len(run) + 1))[: length - 1]
        for end in ENDINGS:
            yield body + end


#: One request: (botocore service name, operation, parameters).
Request = tuple[str, str, dict[str, Any]]


def audit_requests() -> list[Request]:
    """The two requests of the audit that froze the emulator (34 s and 14.5 s)."""
    bucket = {"s3": {"bucket": "a" * 2400 + "!", "key": "template.tar.gz"}}
    proton = {"templateName": "t", "source": bucket}
    things = load_service("iot-managed-integrations").operation("CreateManagedThing")
    thing = example_value(things.input, required_only=True) if things.input else {}
    thing["MetaData"] = {f"key{i}": "x" * 799 + "\n" for i in range(10)}
    return [
        ("proton", "CreateEnvironmentTemplateVersion", proton),
        ("iot-managed-integrations", "CreateManagedThing", thing),
    ]


def big_body_requests() -> list[Request]:
    """Bodies of tens of kilobytes, over the size the emulator checks on its event loop."""
    things = load_service("iot-managed-integrations").operation("CreateManagedThing")
    thing = example_value(things.input, required_only=True) if things.input else {}
    thing["MetaData"] = {f"key{i}": "x" * 799 + "\n" for i in range(50)}
    attributes = {f"attr{i}": "v" * 800 for i in range(100)}
    return [
        ("iot-managed-integrations", "CreateManagedThing", thing),
        (
            "iot",
            "CreateThing",
            {"thingName": "big", "attributePayload": {"attributes": attributes}},
        ),
    ]


def attack_requests(per_member: int = 2) -> list[Request]:
    """The audit's requests, big bodies, and for every body member of every operation whose
    pattern RE2 matches: the required parameters plus that member set to adversarial values at
    its longest allowed length and at ten times it (``per_member`` values of each; one member
    per pattern and length)."""
    out = [*audit_requests(), *big_body_requests()]
    seen: set[tuple[str, float | None]] = set()
    for service in SEED_SERVICES:
        model = load_service(service)
        for name in model.operations:
            op = model.operation(name)
            if op.input is None:
                continue
            for member, ref in op.input.members.items():
                shape = ref.shape
                if ref.location or shape.type != "string" or not shape.pattern:
                    continue
                if (
                    pattern_matcher(shape.pattern).engine == "re"
                    or (shape.pattern, shape.max) in seen
                ):
                    continue
                seen.add((shape.pattern, shape.max))
                base = example_value(op.input, required_only=True)
                longest = int(shape.max) if shape.max is not None else 10_000
                for length in (longest, longest * 10):
                    values = list(adversarial_values(shape.pattern, length))
                    step = max(1, len(values) // per_member)
                    picked = values[::step][:per_member]
                    out.extend((service, op.name, {**base, member: v}) for v in picked)
    return out
