"""Parameter templates: Jinja2 expressions inside job-file values, compiled once per step.

A string that is exactly one ``{{ expression }}`` keeps the expression's type (``"{{ index }}"``
renders the integer, ``"{{ item.tags }}"`` the mapping); other strings with ``{{ }}`` render as
text; everything else is literal. The context holds ``index``, ``key``, ``item``, ``job`` and
``step``. Templates run in Jinja2's immutable sandbox, bounded in work and in the size of what
they build (:mod:`harness.engine._sandbox`), and an undefined name is an error, never an empty
string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2

from harness.engine._limits import Limits
from harness.engine._sandbox import environment

__all__ = ["Template", "TemplateFailure"]

_WHOLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)

Renderer = Callable[[Mapping[str, Any]], Any]


class TemplateFailure(Exception):
    """A template could not be compiled or rendered; the message says which value and why."""


_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")
_MISSING = object()


def _lookup(ctx: Mapping[str, Any], dotted: tuple[str, ...]) -> Any:
    value: Any = ctx
    for part in dotted:
        if not isinstance(value, Mapping):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _fast(spec: str, fallback: Renderer) -> Renderer | None:
    """A renderer without Jinja for strings whose every ``{{ }}`` is a plain ``name.attr``
    lookup (most job templates): a string join instead of a Jinja render, ~10x cheaper.

    Anything unusual (a missing name, a non-mapping on the way, a value Jinja would print
    differently) goes to ``fallback``, so the result and the errors are exactly Jinja's.
    """
    if "{%" in spec or "{#" in spec:
        return None
    parts: list[str | tuple[str, ...]] = []
    pos = 0
    for match in _SIMPLE.finditer(spec):
        parts.append(spec[pos : match.start()])
        parts.append(tuple(match.group(1).split(".")))
        pos = match.end()
    parts.append(spec[pos:])
    if "{{" in "".join(p for p in parts if isinstance(p, str)):
        return None  # some expression is not a plain lookup
    whole = len(parts) == 3 and parts[0] == "" and parts[2] == ""

    def render(ctx: Mapping[str, Any]) -> Any:
        if whole:
            value = _lookup(ctx, parts[1])  # type: ignore[arg-type]
            return fallback(ctx) if value is _MISSING else value
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _lookup(ctx, part)
            if value is _MISSING or not isinstance(value, str | int) or isinstance(value, bool):
                return fallback(ctx)
            out.append(str(value))
        return "".join(out)

    return render


def _compile(spec: Any, where: str, limits: Limits) -> Renderer:
    renderer = _compile_jinja(spec, where, limits)
    if isinstance(spec, str) and "{{" in spec:
        return _fast(spec, renderer) or renderer
    return renderer


def _compile_jinja(spec: Any, where: str, limits: Limits) -> Renderer:
    # The job document's depth is bounded (Limits.depth), so this recursion is too.
    if isinstance(spec, Mapping):
        parts = {
            str(k): _compile(v, f"{where}.{k}" if where else str(k), limits)
            for k, v in spec.items()
        }
        return lambda ctx: {k: r(ctx) for k, r in parts.items()}
    if isinstance(spec, list):
        items = [_compile(v, f"{where}[{i}]", limits) for i, v in enumerate(spec)]
        return lambda ctx: [r(ctx) for r in items]
    if not isinstance(spec, str) or ("{{" not in spec and "{%" not in spec):
        return lambda ctx: spec
    env = environment(limits)
    try:
        whole = _WHOLE.match(spec)
        if whole is not None:
            expression = env.compile_expression(whole.group("expr"), undefined_to_none=False)

            def native(ctx: Mapping[str, Any]) -> Any:
                env.reset()
                try:
                    value = expression(**ctx)
                    if isinstance(value, jinja2.Undefined):
                        raise TemplateFailure(f"{where}: {spec!r} is undefined")
                    # What a native expression returns is not output: measure it here.
                    return env.bounded(value, "the value")
                except TemplateFailure:
                    raise
                except Exception as exc:
                    raise TemplateFailure(f"{where}: {_short(spec)}: {_reason(exc)}") from None

            return native
        template = env.from_string(spec)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailure(f"{where}: {spec!r}: {exc.message}") from None

    def text(ctx: Mapping[str, Any]) -> str:
        env.reset()
        try:
            return template.render(ctx)
        except Exception as exc:
            raise TemplateFailure(f"{where}: {_short(spec)}: {_reason(exc)}") from None

    return text


def _short(spec: str, width: int = 200) -> str:
    text = repr(spec)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):  # its message is empty
        return "out of memory"
    if isinstance(exc, RecursionError):
        return "the template recurses too deeply"
    return str(exc) or type(exc).__name__


class Template:
    """A compiled parameter template.

    :param spec: the ``params`` value of a step (any YAML value)
    :raises TemplateFailure: on a syntax error, naming the value
    """

    __slots__ = ("_render", "spec")

    def __init__(self, spec: Any, where: str = "", limits: Limits | None = None) -> None:
        self.spec = spec
        self._render = _compile(spec, where, limits or Limits())

    def render(self, context: Mapping[str, Any]) -> Any:
        """The value for one item.

        :raises TemplateFailure: when an expression fails (undefined name, bad operation)
        """
        return self._render(context)
