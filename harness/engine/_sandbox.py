"""The Jinja2 sandbox templates run in, bounded in work and in the size of what they build.

Jinja's immutable sandbox stops templates from reaching Python internals, not from building a
2 GB string (``'x' * 2**31``), a billion-element list or a loop that never ends. This one
refuses, before the allocation, every operation that could build a value larger than
``Limits.value_size``, and counts the work of each rendered value (calls, filters, loop
iterations, range elements) against ``Limits.template_steps``:

* the operators that grow values (``*``, ``**``, ``+``, ``%``) are intercepted
  (``intercepted_binops``) and checked against their operands' sizes;
* ``~`` concatenation, every ``{{ }}`` output and every ``for`` loop go through checks that the
  template is rewritten to call (:class:`_Rewrite`);
* calls and filters are counted; the string methods and filters that multiply sizes (join,
  replace, padding, indent, wordwrap, tojson, ``%`` and ``format`` widths) are checked before
  they run, and every result is measured after;
* ``range`` is charged by its length; ``lipsum`` and ``urlize`` (HTML helpers that multiply
  text) are not available.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from harness.engine._limits import Limits, TooLarge, measure

__all__ = ["TemplateLimit", "environment"]

#: The largest integer a template may compute: beyond it, arithmetic gets slow and printing
#: fails (Python prints at most 4,300 digits).
INT_BITS = 65_536

_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_NUMBER = re.compile(r"\d+")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
#: Filters whose integer arguments are sizes (widths, counts, indents).
_SIZED_FILTERS = frozenset(
    {"batch", "center", "indent", "pad", "slice", "truncate", "wordwrap", "tojson"}
)


class TemplateLimit(Exception):
    """A template was stopped by a limit; the message names it."""


class _Rewrite(NodeTransformer):
    """Routes loops, ``~`` and outputs through the environment's checks."""

    def __init__(self) -> None:
        self._repeated = 0  # inside a loop or a macro: constant text may be output many times

    def _call(self, name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
        return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)

    def _repeating(self, node: nodes.Node) -> nodes.Node:
        self._repeated += 1
        try:
            return self.generic_visit(node)
        finally:
            self._repeated -= 1

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self._repeating(node)
        node.iter = self._call("guarded_loop", [node.iter], node.lineno)  # type: ignore[list-item]
        return node

    visit_Macro = visit_CallBlock = _repeating

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("guarded_concat", node.nodes, node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            child
            if isinstance(child, nodes.TemplateData) and not self._repeated
            else self._call("guarded_output", [child], node.lineno)
            for child in node.nodes
        ]
        return node


class _CodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(_Rewrite().visit(node), frame)


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, limits: Limits) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False)
        self.limits = limits
        self.steps_left = limits.template_steps
        self.output_left = limits.value_size
        self.globals["range"] = self._range
        del self.globals["lipsum"]
        del self.filters["urlize"]
        self.filters["pad"] = lambda value, width=5: str(value).zfill(int(width))
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}

    # ------------------------------------------------------------------------- accounting
    def reset(self) -> None:
        """A fresh budget, before rendering one value."""
        self.steps_left = self.limits.template_steps
        self.output_left = self.limits.value_size

    def charge(self, steps: int = 1) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise TemplateLimit(
                f"the template takes more than {self.limits.exceeded('template_steps')}"
            )

    def _too_big(self, what: str, size: int | None = None) -> TemplateLimit:
        about = f" ({size:,})" if size is not None else ""
        return TemplateLimit(f"{what}{about} would be above {self.limits.exceeded('value_size')}")

    def size(self, value: Any, what: str = "a value") -> int:
        """The measured size of ``value`` (see :func:`measure`), charging the walk."""
        if isinstance(value, str | bytes):
            return len(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value.bit_length() * 3 // 10 + 1
        if not isinstance(value, Mapping | list | tuple | set | frozenset):
            return 1
        limits = self.limits
        try:
            size, visited = measure(
                value, limits.value_size, limits.depth, nodes=max(self.steps_left, 0)
            )
        except TooLarge as exc:
            if exc.what == "depth":
                raise TemplateLimit(
                    f"{what} nests deeper than {limits.exceeded('depth')}"
                ) from None
            if exc.what == "nodes":
                self.charge(self.steps_left + 1)
            raise self._too_big(what) from None
        self.charge(visited)
        return size

    def bounded(self, value: Any, what: str = "the result") -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > INT_BITS:
                raise TemplateLimit(f"{what} is an integer above {INT_BITS:,} bits")
        elif self.size(value, what) > self.limits.value_size:
            raise self._too_big(what)
        return value

    def _expect(self, size: int, what: str) -> None:
        if size > self.limits.value_size:
            raise self._too_big(what, size)

    # ------------------------------------------------------------------ rewritten nodes
    def guarded_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.charge()
            yield item

    def guarded_concat(self, *parts: Any) -> str:
        self._expect(sum(self.size(p, "a ~ operand") for p in parts), "the result of ~")
        return "".join(map(str, parts))

    def guarded_output(self, value: Any) -> Any:
        self.output_left -= self.size(value, "an output")
        if self.output_left < 0:
            raise self._too_big("the rendered text")
        return value

    # ---------------------------------------------------------------------- operators
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator != "**" and type(left) in _PLAIN and type(right) in _PLAIN:
            # The common case ({{ index % 20 }}, {{ n + 1 }}): nothing grows beyond INT_BITS
            # but a product, checked below.
            if operator != "*" or left.bit_length() + right.bit_length() <= INT_BITS:
                return self.binop_table[operator](left, right)
        what = f"the result of {operator}"
        if operator == "*":
            self._check_repeat(left, right, what)
        elif operator == "**":
            if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
                if left.bit_length() * right > INT_BITS:
                    raise TemplateLimit(f"{what} would be an integer above {INT_BITS:,} bits")
        elif operator == "+":
            if not (_is_number(left) and _is_number(right)):
                self._expect(self.size(left) + self.size(right), what)
        elif operator == "%" and isinstance(left, str):
            self._check_printf(left, right if isinstance(right, tuple) else (right,), what)
        return self.bounded(super().call_binop(context, operator, left, right), what)

    def _check_repeat(self, left: Any, right: Any, what: str) -> None:
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > INT_BITS:
                raise TemplateLimit(f"{what} would be an integer above {INT_BITS:,} bits")
            return
        sequence, times = (left, right) if _is_int(right) else (right, left)
        if not _is_int(times) or times <= 0:
            return
        if isinstance(sequence, str | bytes):
            self._expect(len(sequence) * times, what)
        elif isinstance(sequence, list | tuple):
            self._expect(max(self.size(sequence) - 1, len(sequence)) * times, what)

    def _check_printf(self, fmt: str, args: tuple[Any, ...], what: str) -> None:
        widest, star = _printf_widths(fmt)
        if widest > self.limits.value_size:
            raise self._too_big(f"{what} (a width of {widest})")
        values = list(args[0].values()) if len(args) == 1 and isinstance(args[0], Mapping) else args
        if star and any(_is_int(a) and a > self.limits.value_size for a in values):
            raise self._too_big(f"{what} (a * width)")
        self._expect(len(fmt) + sum(self.size(a) for a in values), what)

    # --------------------------------------------------------------------- calls, format
    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.charge()
        owner = getattr(__obj, "__self__", None)
        if owner is __self:
            # guarded_loop, guarded_concat, guarded_output: they check for themselves, and take
            # none of the keywords (_loop_vars, _block_vars) Jinja adds inside loops and blocks.
            return __obj(*args)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str | bytes):
            what = f"the result of .{name}()"
            if name == "join" and args:
                items = list(args[0])
                __self.charge(len(items))
                __self._expect(len(owner) * len(items) + __self.size(items), what)
                args = (items, *args[1:])
            elif name == "replace" and len(args) >= 2:
                __self._check_replace(owner, args[0], args[1], args[2:], what)
            elif name in _WIDTH_METHODS and args and _is_int(args[0]):
                __self._expect(args[0], what)
            elif name == "expandtabs":
                tabs = args[0] if args else kwargs.get("tabsize", 8)
                if _is_int(tabs):
                    __self._expect(len(owner) * max(tabs, 1), what)
            elif name == "translate" and args:
                __self._expect(len(owner) * max(__self.size(args[0]), 1), what)
        result = super().call(__context, __obj, *args, **kwargs)
        return __self.bounded(result, f"the result of {name or 'a call'}()")

    def _check_replace(
        self, text: Any, old: Any, new: Any, rest: tuple[Any, ...], what: str
    ) -> None:
        if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
            return
        found = text.count(old) if old else len(text) + 1
        if rest and _is_int(rest[0]) and rest[0] >= 0:
            found = min(found, rest[0])
        self._expect(len(text) + found * max(len(new) - len(old), 0), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        mapping_only = value.__name__ == "format_map"

        def guarded(*args: Any, **kwargs: Any) -> str:
            values = list(args) + list(kwargs.values())
            if mapping_only and len(args) == 1 and isinstance(args[0], Mapping):
                values = list(args[0].values())
            self._check_format(fmt, values, "the result of .format()")
            return self.bounded(wrapped(*args, **kwargs), "the result of .format()")  # type: ignore[no-any-return]

        return guarded

    def _check_format(self, fmt: str, values: list[Any], what: str) -> None:
        nested = False
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec and "{" in spec:
                nested = True
            for number in _NUMBER.findall(spec or ""):
                if int(number) > self.limits.value_size:
                    raise self._too_big(f"{what} (a width of {number})")
        if nested and any(_is_int(v) and v > self.limits.value_size for v in values):
            raise self._too_big(f"{what} (a nested width)")
        self._expect(len(fmt) + sum(self.size(v) for v in values), what)

    # ------------------------------------------------------------------------- filters
    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        # Filters marked pass_context / pass_eval_context / pass_environment get that first.
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        what = f"the result of |{name}"

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.charge()
            value, rest = args[skip] if len(args) > skip else None, args[skip + 1 :]
            extra = [*rest, *kwargs.values()]
            for arg in extra if name in _SIZED_FILTERS else ():
                if _is_int(arg) and arg > self.limits.value_size:
                    raise self._too_big(f"{what} (an argument of {arg:,})")
            if name == "join" and value is not None:
                items = list(value)
                self.charge(len(items))
                glue = rest[0] if rest else kwargs.get("d", "")
                self._expect(self.size(glue) * len(items) + self.size(items), what)
                args = (*args[:skip], items, *rest)
            elif name == "replace" and len(rest) >= 2:
                self._check_replace(str(value), rest[0], rest[1], rest[2:], what)
            elif name == "format" and isinstance(value, str):
                self._check_printf(value, tuple(extra), what)
            elif name == "indent" and isinstance(value, str):
                width = rest[0] if rest else kwargs.get("width", 4)
                pad = width if _is_int(width) else self.size(width)
                self._expect(len(value) + (value.count("\n") + 1) * pad, what)
            elif name == "wordwrap" and isinstance(value, str):
                width = rest[0] if rest else kwargs.get("width", 79)
                wrap = rest[2] if len(rest) > 2 else kwargs.get("wrapstring") or "\n"
                lines = len(value) // max(width if _is_int(width) else 1, 1) + 1
                self._expect(len(value) + (lines + value.count("\n")) * self.size(wrap), what)
            elif name == "tojson":
                indent = rest[0] if rest else kwargs.get("indent") or 0
                per = 8 + (indent if _is_int(indent) else 0) * self.limits.depth
                self._expect(self.size(value) * per, what)
            else:
                for arg in (value, *extra):
                    self.size(arg)  # refuses an argument that is already too large
            return self.bounded(func(*args, **kwargs), what)

        return guarded

    def _range(self, *args: int) -> range:
        values = range(*args)
        start, stop, step = values.start, values.stop, values.step
        # Not len(values): it raises OverflowError beyond sys.maxsize.
        length = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)
        if length > self.steps_left:
            raise TemplateLimit(
                f"range() of {length:,} items would take more than "
                f"{self.limits.exceeded('template_steps')}"
            )
        self.charge(length)
        return values


_PLAIN = frozenset({int})


@functools.lru_cache(maxsize=256)
def _printf_widths(fmt: str) -> tuple[int, bool]:
    """The widest width or precision of a ``%`` format, and whether one is ``*``."""
    widest, star = 0, False
    for match in _PRINTF.finditer(fmt):
        for group in match.groups():
            if group == "*":
                star = True
            elif group:
                widest = max(widest, int(group))
    return widest, star


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@functools.lru_cache(maxsize=8)
def environment(limits: Limits) -> _Environment:
    """The sandbox for ``limits`` (one per distinct limits, shared by every template)."""
    return _Environment(limits)
