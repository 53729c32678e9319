"""Limits on what a job file may ask for, and the bounded readers that enforce them.

A job file is input, like a request body: a YAML alias bomb, a thousand nested brackets or a
template computing ``'x' * 2**31`` must be refused at once, in bounded memory, with a message
naming the limit, never hang the operator's terminal or exhaust the machine. The limits are
generous for real jobs; each can be raised with an environment variable (``Limits.from_env``),
except the fixed bounds below, which match what the engine and the CLI can honour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from harness.errors import InvalidArgument, JobError

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BUDGET",
    "MAX_CONCURRENCY",
    "MAX_DELAY",
    "MAX_RATE",
    "Limits",
    "TooLarge",
    "check_document",
    "load_yaml",
    "measure",
    "positive",
    "shown",
]

#: Calls in flight at once: the same bound as ``harness run --concurrency``.
MAX_CONCURRENCY = 4096
#: ``retries.max_attempts``.
MAX_ATTEMPTS = 100
#: ``retries.base_delay`` and ``retries.max_delay``, in seconds.
MAX_DELAY = 3600.0
#: ``retries.throttle_budget`` and ``retries.in_progress_budget``, in seconds (a week).
MAX_BUDGET = 7 * 24 * 3600.0
#: A step's ``rate``, in calls per second.
MAX_RATE = 1_000_000.0


def _limit(default: int, env: str, what: str) -> Any:
    return field(default=default, metadata={"env": env, "what": what})


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds a job file is checked against (defaults generous for real jobs)."""

    #: Size of the job file itself, in bytes.
    job_bytes: int = _limit(8 * 2**20, "HARNESS_MAX_JOB_BYTES", "bytes")
    #: Values in the job document (scalars, lists, mappings) with every YAML alias expanded.
    job_nodes: int = _limit(1_000_000, "HARNESS_MAX_JOB_NODES", "values")
    #: Nesting of lists and mappings, in the job file, in item rows and in rendered values.
    depth: int = _limit(64, "HARNESS_MAX_DEPTH", "levels")
    #: Size of one rendered template value: characters, plus one per list or mapping element.
    value_size: int = _limit(2**20, "HARNESS_MAX_VALUE_SIZE", "characters")
    #: Work of one item's templates: calls, filters, loop iterations and range elements.
    template_steps: int = _limit(100_000, "HARNESS_MAX_TEMPLATE_STEPS", "steps")
    #: One line (row) of a ``csv`` or ``jsonl`` item source, in bytes.
    line_bytes: int = _limit(2**20, "HARNESS_MAX_LINE_BYTES", "bytes")
    #: Items of one ``count`` or ``range`` source.
    step_items: int = _limit(10**9, "HARNESS_MAX_STEP_ITEMS", "items")
    #: Items a ``--dry-run`` renders and validates, all steps together.
    dry_run_items: int = _limit(1_000_000, "HARNESS_MAX_DRY_RUN_ITEMS", "items")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, each overridden by its ``HARNESS_MAX_*`` variable when set.

        :raises InvalidArgument: naming the variable, for a value that is not a positive integer
        """
        values: dict[str, int] = {}
        for spec in fields(cls):
            text = environ.get(spec.metadata["env"])
            if text is None or not text.strip():
                continue
            try:
                value = int(text)
            except ValueError:
                value = 0
            if value <= 0:
                raise InvalidArgument(
                    f"{spec.metadata['env']}={text!r}: expected a positive integer"
                )
            values[spec.name] = value
        return cls(**values)

    def exceeded(self, name: str) -> str:
        """``"the value_size limit of 1,048,576 characters (HARNESS_MAX_VALUE_SIZE)"``."""
        spec = next(s for s in fields(self) if s.name == name)
        value = getattr(self, name)
        return f"the {name} limit of {value:,} {spec.metadata['what']} ({spec.metadata['env']})"


class TooLarge(Exception):
    """A value is larger (``what="size"``) or deeper (``what="depth"``) than allowed."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


_CONTAINERS = (list, tuple, set, frozenset)


def measure(
    value: Any, limit: int, depth: int, *, text: bool = True, nodes: int | None = None
) -> tuple[int, int]:
    """The size of ``value`` as written out, and the number of values visited to find it.

    The size is one per value, plus the characters of strings (when ``text``) and the digits of
    integers. Shared references count every time they appear, as they do once serialised, so an
    object graph built from a few aliases is measured at its expanded size; the walk stops as
    soon as ``limit`` (or ``nodes`` values visited) is passed, so it costs at most that many
    steps whatever the graph.

    :raises TooLarge: ``"size"`` beyond ``limit``, ``"depth"`` for lists or mappings nested
        more than ``depth`` levels (a recursive structure included), ``"nodes"`` beyond ``nodes``
    """
    total = visited = 0
    most = limit if nodes is None else nodes
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        total += 1
        visited += 1
        if isinstance(item, str | bytes | bytearray):
            if text:
                total += len(item)
        elif isinstance(item, Mapping):
            if level > depth:
                raise TooLarge("depth")
            if total + 2 * len(item) > limit:
                raise TooLarge("size")
            if visited + 2 * len(item) > most:
                raise TooLarge("nodes")
            for key, member in item.items():
                stack.append((key, level + 1))
                stack.append((member, level + 1))
        elif isinstance(item, _CONTAINERS):
            if level > depth:
                raise TooLarge("depth")
            if total + len(item) > limit:
                raise TooLarge("size")
            if visited + len(item) > most:
                raise TooLarge("nodes")
            stack.extend((member, level + 1) for member in item)
        elif text and isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() * 3 // 10  # decimal digits, roughly
        if total > limit:
            raise TooLarge("size")
    return total, visited


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded while it composes (before anything is constructed).

    Aliases are counted at their expanded size (a merge key ``<<: *a`` included), so a
    "billion laughs" document is refused after composing a few dozen nodes; nesting is bounded
    before PyYAML's recursive composer could hit Python's recursion limit.
    """

    def __init__(self, stream: bytes, limits: Limits) -> None:
        super().__init__(stream)
        self.limits = limits
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                line = event.start_mark.line + 1
                raise JobError(f"line {line}: a recursive YAML alias (*{event.anchor})")
            return super().compose_node(parent, index)
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > self.limits.depth:
                raise JobError(f"job file nests deeper than {self.limits.exceeded('depth')}")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nested
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > self.limits.job_nodes:
            raise JobError(
                f"job file has more than {self.limits.job_nodes:,} values with YAML aliases "
                f"expanded: above {self.limits.exceeded('job_nodes')}"
            )
        self._sizes[id(node)] = size
        return node


def load_yaml(text: bytes, limits: Limits) -> Any:
    """Parse a YAML document within ``limits`` (aliases, nesting).

    :raises JobError: for a limit; :class:`yaml.YAMLError` for a syntax error
    """
    loader = _BoundedLoader(text, limits)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_document(raw: Any, limits: Limits) -> None:
    """Bound a parsed job document (from JSON, or built by a caller) like the YAML loader does.

    :raises JobError: naming the limit
    """
    try:
        measure(raw, limits.job_nodes, limits.depth, text=False)
    except TooLarge as exc:
        if exc.what == "depth":
            raise JobError(f"job file nests deeper than {limits.exceeded('depth')}") from None
        raise JobError(
            f"job file has more than {limits.job_nodes:,} values: "
            f"above {limits.exceeded('job_nodes')}"
        ) from None


def positive(value: Any, where: str, cast: type[int] | type[float], maximum: float) -> Any:
    """``value`` as a positive ``cast`` no larger than ``maximum``.

    :raises JobError: naming ``where`` (not cast(value) alone: int(2.5) is 2, int(True) is 1,
        and float() admits inf and nan)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > maximum:
        number = math.inf  # beyond what a float holds, perhaps: refused below by size
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not 0 < number < math.inf or (cast is int and number % 1):
            what = "integer" if cast is int else "number"
            raise JobError(f"{where}: expected a positive {what}, not {shown(value)}")
    if number > maximum:
        bound = f"{int(maximum):,}" if maximum == int(maximum) else f"{maximum:,}"
        raise JobError(f"{where}: {shown(value)} is above the maximum of {bound}")
    return cast(number)


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to about ``width`` characters, for messages (and safe for integers
    too long for ``repr``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {value.bit_length() * 3 // 10:,} digits"
    try:
        text = repr(value)
    except ValueError:  # an integer too long for repr, inside a container
        return f"a {type(value).__name__}"
    return text if len(text) <= width else f"{text[: width - 3]}..."
