"""AWS model regexes, compiled for Python with AWS's meaning.

The ``pattern`` traits in AWS models are Java regexes. AWS validates them against the whole value
(Java ``Matcher.matches()``), with ASCII ``\\d \\w \\s``. Python's :mod:`re` rejects a few Java
constructs, so we translate them explicitly:

* ``\\p{..}`` / ``\\P{..}``: Java POSIX classes (``Upper``, ``Digit``, ``Graph``, ``Cntrl``...,
  ASCII-only as in Java) and Unicode general categories (``L``, ``Lu``, ``N``, ``Z``, ``C``...,
  built from :mod:`unicodedata`);
* ``\\x{HHHH}`` code point escapes;
* ``\\z`` (absolute end) and ``\\h`` (horizontal white space);
* a ``-`` right after a class escape inside ``[...]`` (``[\\w-_]``), which Java reads literally;
* ``.``, which in Java stops at every line terminator (``\\r``, ``\\u0085``, ``\\u2028``...).

Anything else Python rejects raises :class:`UnsupportedPattern` naming the pattern and the reason.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

from harness.errors import ModelError

__all__ = ["UnsupportedPattern", "compile_pattern", "translate_pattern"]


class UnsupportedPattern(ModelError):
    """Raised when a model pattern uses a construct we cannot translate to Python."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"unsupported pattern {pattern!r}: {reason}")


# Java's POSIX character classes are US-ASCII only (without UNICODE_CHARACTER_CLASS).
_PUNCT = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum())
_POSIX: dict[str, str] = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": re.escape(_PUNCT),
    "Graph": "\\x21-\\x7e",
    "Print": "\\x20-\\x7e",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
    "javaWhitespace": " \\t\\n\\x0b\\f\\r\\x1c-\\x1f",
}
_HORIZONTAL_SPACE = " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"
_CLASS_ESCAPES = frozenset("dDwWsS")
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"


def _escape_cp(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


@lru_cache(maxsize=1)
def _category_table() -> dict[str, str]:
    """Map each two-letter Unicode general category to a class body of ranges (computed once)."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    start = 0
    current = unicodedata.category(chr(0))
    for cp in range(1, sys.maxunicode + 2):
        cat = unicodedata.category(chr(cp)) if cp <= sys.maxunicode else ""
        if cat != current:
            ranges.setdefault(current, []).append((start, cp - 1))
            start, current = cp, cat
    return {
        cat: "".join(_escape_cp(a) if a == b else f"{_escape_cp(a)}-{_escape_cp(b)}" for a, b in rs)
        for cat, rs in ranges.items()
    }


def _property_body(pattern: str, name: str) -> str:
    """The class body (no brackets) for a ``\\p{name}`` property."""
    if name in _POSIX:
        return _POSIX[name]
    bare = name
    for prefix in ("Is", "gc=", "general_category="):
        if bare.startswith(prefix):
            bare = bare[len(prefix) :]
    if bare in ("White_Space", "WhiteSpace", "Whitespace"):
        return " \\t\\n\\x0b\\f\\r\\x85\\xa0" + _HORIZONTAL_SPACE + "\\u2028\\u2029"
    if bare in ("Alphabetic", "Letter"):
        bare = "L"
    if bare in ("Digit",):
        bare = "Nd"
    table = _category_table()
    if len(bare) == 2 and bare in table:
        return table[bare]
    if len(bare) == 1 and bare in "LMNPSZC":
        return "".join(body for cat, body in sorted(table.items()) if cat.startswith(bare))
    if bare == "LC" or bare == "L&":
        return table["Lu"] + table["Ll"] + table["Lt"]
    raise UnsupportedPattern(pattern, f"unknown character property \\p{{{name}}}")


def translate_pattern(pattern: str) -> str:
    """Translate a Java-flavoured AWS model regex into an equivalent Python :mod:`re` pattern.

    :raises UnsupportedPattern: for a construct that has no Python translation
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0
    after_class_escape = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "pP":
                if i + 2 < n and pattern[i + 2] == "{":
                    end = pattern.find("}", i + 3)
                    if end < 0:
                        raise UnsupportedPattern(pattern, "unterminated \\p{")
                    name, i = pattern[i + 3 : end], end + 1
                elif i + 2 < n:
                    name, i = pattern[i + 2], i + 3
                else:
                    raise UnsupportedPattern(pattern, "dangling \\p")
                body = _property_body(pattern, name)
                if in_class:
                    if nxt == "P":
                        raise UnsupportedPattern(
                            pattern, f"negated property \\P{{{name}}} inside a character class"
                        )
                    out.append(body)
                else:
                    out.append(f"[{'^' if nxt == 'P' else ''}{body}]")
                after_class_escape = True
                continue
            if nxt == "x" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise UnsupportedPattern(pattern, "unterminated \\x{")
                try:
                    out.append(_escape_cp(int(pattern[i + 3 : end], 16)))
                except ValueError as exc:
                    raise UnsupportedPattern(pattern, f"bad code point escape: {exc}") from None
                i = end + 1
                after_class_escape = False
                continue
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "Z":
                out.append("(?=\\n?\\Z)")
            elif nxt == "h":
                out.append(_HORIZONTAL_SPACE if in_class else f"[{_HORIZONTAL_SPACE}]")
            else:
                out.append(ch + nxt)
            after_class_escape = nxt in _CLASS_ESCAPES or nxt == "h"
            i += 2
            continue
        if ch == "." and not in_class:
            # Java's "." stops at every line terminator, not only "\n" as Python's does.
            out.append(_JAVA_DOT)
            i += 1
            after_class_escape = False
            continue
        if in_class:
            if ch == "]" and i > class_start:
                in_class = False
            elif ch == "-" and after_class_escape and i + 1 < n and pattern[i + 1] != "]":
                # Java reads "-" after a class escape as a literal; Python calls it a bad range.
                out.append("\\-")
                i += 1
                after_class_escape = False
                continue
        elif ch == "[":
            in_class = True
            # "]" right after "[" or "[^" is a literal member, not the end of the class.
            skip = 2 if i + 1 < n and pattern[i + 1] == "^" else 1
            out.append(pattern[i : i + skip])
            i += skip
            class_start = i
            after_class_escape = False
            continue
        out.append(ch)
        after_class_escape = False
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an AWS model pattern for full-value matching with ASCII ``\\d \\w \\s``.

    Use ``compile_pattern(p).fullmatch(value)``: AWS checks the whole value.

    :raises UnsupportedPattern: when the pattern cannot be translated or compiled
    """
    translated = translate_pattern(pattern)
    try:
        return re.compile(translated, re.ASCII)
    except re.error as exc:
        raise UnsupportedPattern(pattern, str(exc)) from None
