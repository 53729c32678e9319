"""AWS model patterns as portable, anchored JSON Schema ``pattern`` strings.

A JSON Schema ``pattern`` is ECMA 262 and unanchored; AWS model patterns are Java regexes that must
match the whole value. Three engines read what we emit: Python :mod:`re` (Hypothesis generates from
it), Schemathesis's validator (Rust ``regex``/``fancy-regex`` through ``jsonschema_rs``) and
``openapi-spec-validator``. So we emit only the common subset:

* the model pattern is translated with :func:`harness.model.translate_pattern` (Java -> Python);
* Unicode general categories (``\\p{L}``, ``\\p{C}``...) would translate to classes of thousands
  of ranges with astral escapes no ECMA engine reads without the ``u`` flag: we *approximate* them
  with small BMP classes (Latin letters, ASCII digits...). An approximation only steers generation:
  the verdict on a request always comes from the model's own validator, never from the document;
* lookarounds (Hypothesis cannot satisfy length guards like ``(?=.{1,256}$)``), inline flags,
  named or atomic groups, possessive quantifiers and astral escapes are not portable: we drop the
  pattern (the length bounds still apply) and keep the original under ``x-aws-pattern``;
* the result is anchored ``^(?:...)$``, so generated ARNs carry no junk around the match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.model import UnsupportedPattern, translate_pattern

__all__ = ["PortablePattern", "portable_pattern"]

# Java POSIX classes: translate_pattern expands these exactly into short ASCII classes.
_POSIX = frozenset(
    {
        "Lower", "Upper", "ASCII", "Alpha", "Digit", "Alnum", "Punct", "Graph", "Print",
        "Blank", "Cntrl", "XDigit", "Space", "javaWhitespace",
    }
)  # fmt: skip
_LETTERS = "a-zA-Z\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u024f"
_SPACES = " \\t\\n\\x0b\\f\\r\\u0085\\u00a0\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\ufeff"
# Small BMP approximations of Unicode general categories (class bodies, no brackets).
_CATEGORIES: dict[str, str] = {
    "L": _LETTERS,
    "LC": _LETTERS,
    "L&": _LETTERS,
    "Letter": _LETTERS,
    "Alphabetic": _LETTERS,
    "Lu": "A-Z\\u00c0-\\u00d6\\u00d8-\\u00de",
    "Uppercase": "A-Z\\u00c0-\\u00d6\\u00d8-\\u00de",
    "Ll": "a-z\\u00df-\\u00f6\\u00f8-\\u00ff",
    "Lowercase": "a-z\\u00df-\\u00f6\\u00f8-\\u00ff",
    "N": "0-9",
    "Nd": "0-9",
    "Z": " \\u00a0\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000",
    "Zs": " \\u00a0\\u2000-\\u200a\\u202f\\u205f\\u3000",
    "White_Space": _SPACES,
    "WhiteSpace": _SPACES,
    "Whitespace": _SPACES,
    "P": "!-#%-*,-/:;?@\\[-\\]_{}\\u00a1\\u00a7\\u00ab\\u00b6\\u00b7\\u00bb\\u00bf\\u2010-\\u2027",
    "S": "$+<=>^`|~\\u00a2-\\u00a6\\u00a8\\u00a9\\u00ac\\u00ae-\\u00b1\\u00b4\\u00d7\\u00f7",
    "M": "\\u0300-\\u036f",
    "C": _CONTROL,
    "Cc": "\\x00-\\x1f\\x7f-\\x9f",
    "Cf": "\\u00ad\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\ufeff",
}
# Constructs outside the portable subset (after translation to Python syntax).
_NOT_PORTABLE = re.compile(
    r"\(\?[^:]"  # lookarounds, inline flags, named/atomic groups, conditionals, comments
    r"|\\[UAZGz]"  # astral escapes, Python/Java-only anchors
    r"|(?<!\\)[*+?}]\+"  # possessive quantifiers
)
_MAX_LENGTH = 2048  # a longer translation is a sign of an expanded property class


@dataclass(frozen=True, slots=True)
class PortablePattern:
    """A pattern every engine reads the same way.

    :param pattern: anchored ``^(?:...)$``, or ``None`` when the model pattern is not portable
    :param exact: ``False`` when a Unicode category was approximated (then the pattern only
        steers generation and must not judge responses)
    """

    pattern: str | None
    exact: bool


def _approximate_categories(pattern: str) -> tuple[str, bool] | None:
    """Replace Unicode general categories with small BMP classes; ``None`` if one is unknown."""
    out: list[str] = []
    approximated = False
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt not in "pP":
                out.append(pattern[i : i + 2])
                i += 2
                continue
            if i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    return None
                name, stop = pattern[i + 3 : end], end + 1
            else:
                name, stop = pattern[i + 2 : i + 3], i + 3
            bare = name
            for prefix in ("Is", "gc=", "general_category="):
                bare = bare.removeprefix(prefix)
            if name in _POSIX:
                out.append(pattern[i:stop])  # exact and short once translated
            elif bare in _CATEGORIES:
                body = _CATEGORIES[bare]
                if in_class:
                    if nxt == "P":
                        return None  # a negated category inside a class has no small form
                    out.append(body)
                else:
                    out.append(f"[{'^' if nxt == 'P' else ''}{body}]")
                approximated = True
            else:
                return None
            i = stop
            continue
        if ch == "[" and not in_class:
            in_class = True
            # "]" right after "[" or "[^" is a literal member, not the end of the class.
            skip = 2 if pattern[i + 1 : i + 2] == "^" else 1
            out.append(pattern[i : i + skip])
            i += skip
            if pattern[i : i + 1] == "]":
                out.append("]")
                i += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        elif ch == "&" and in_class and pattern[i + 1 : i + 2] == "&":
            return None  # Java class intersection: no Python or ECMA equivalent
        out.append(ch)
        i += 1
    return "".join(out), not approximated


def portable_pattern(pattern: str) -> PortablePattern:
    """The anchored, portable form of an AWS model pattern (see the module docstring)."""
    approximated = _approximate_categories(pattern)
    if approximated is None:
        return PortablePattern(None, False)
    text, exact = approximated
    try:
        translated = translate_pattern(text)
    except UnsupportedPattern:
        return PortablePattern(None, False)
    # Java's end anchors, as translate_pattern spells them, are redundant before our closing "$".
    translated = translated.replace("(?=\\n?\\Z)", "$").replace("\\Z", "$")
    if len(translated) > _MAX_LENGTH or _NOT_PORTABLE.search(translated):
        return PortablePattern(None, False)
    anchored = f"^(?:{translated})$"
    try:
        re.compile(anchored)
    except re.error:
        return PortablePattern(None, False)
    return PortablePattern(anchored, exact)
