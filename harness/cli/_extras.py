"""Commands that need an optional extra say so in one line, with the command that installs it.

``harness fuzz``, ``harness sweep`` and ``harness specs openapi`` run on :mod:`harness.fuzz`,
which needs the ``fuzz`` extra (Hypothesis, Schemathesis). On a base install, importing it would
end the command with a ModuleNotFoundError traceback from deep in the import chain; instead
:func:`require_extra` exits with status 2 naming the missing package and the exact install
command for the interpreter that runs harness. Every other command works without the extra.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse

import click

__all__ = ["MissingExtra", "extra_packages", "install_command", "require_extra"]

_DISTRIBUTION = "harness"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class MissingExtra(click.ClickException):
    """A command needs an optional extra that is not installed (exit status 2, as bad usage:
    nothing ran)."""

    exit_code = 2


def extra_packages(extra: str) -> tuple[str, ...]:
    """The import names of the packages ``extra`` adds, from the installed metadata (empty when
    harness runs from a source tree that was never installed)."""
    try:
        requirements = metadata.requires(_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return ()
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    names: list[str] = []
    for requirement in requirements:
        requirement_text, _, markers = requirement.partition(";")
        match = _NAME.match(requirement_text.strip())
        if match is None or not marker.search(markers):
            continue
        name = match.group(0).lower().replace("-", "_").replace(".", "_")
        if name != _DISTRIBUTION and name not in names:
            names.append(name)
    return tuple(names)


def install_command(extra: str) -> str:
    """The command that installs ``extra`` into the environment running harness: an editable
    install of the checkout when harness was installed that way, else from the index."""
    python = shlex.quote(sys.executable)
    source = _editable_source()
    if source is None:
        return f"{python} -m pip install {shlex.quote(f'{_DISTRIBUTION}[{extra}]')}"
    where = "." if os.path.abspath(source) == os.getcwd() else source
    return f"{python} -m pip install -e {shlex.quote(f'{where}[{extra}]')}"


def _editable_source() -> str | None:
    """The checkout harness is installed from in editable mode (PEP 610), if it is."""
    try:
        text = metadata.distribution(_DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        direct = json.loads(text or "{}")
    except ValueError:
        return None
    url = urlparse(str(direct.get("url", "")))
    if not (direct.get("dir_info") or {}).get("editable") or url.scheme != "file":
        return None
    return unquote(url.path)


def require_extra(extra: str, command: str, module: str = "harness.fuzz") -> None:
    """Import ``module`` for ``command``, or exit 2 naming the package of ``extra`` that is
    missing and how to install it.

    :raises MissingExtra: when a package of the extra (or one they need) cannot be imported
    """
    # The extra's own packages first, by name: one that is shadowed or broken raises a plain
    # ImportError that would not say which package it is.
    for package in extra_packages(extra):
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise _missing(extra, command, package, exc) from None
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        name = (exc.name or "").split(".")[0]
        if not name or name == _DISTRIBUTION:
            raise  # a module of harness itself: a bug, not an installation to complete
        raise _missing(extra, command, name, exc) from None


def _missing(extra: str, command: str, package: str, exc: ImportError) -> MissingExtra:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return MissingExtra(
        f"{command} needs {package} from the optional '{extra}' extra, which cannot be "
        f"imported ({reason}); install it with: {install_command(extra)}"
    )
