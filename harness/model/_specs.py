"""Where the pinned models live, and how they are read and regenerated from botocore.

Layout of ``specs/`` (data, not code)::

    specs/PROVENANCE.json                     botocore version, date, sha256 of every file
    specs/quotas.yaml                         default TPS per operation, with sources
    specs/overlays/patterns.yaml              model patterns that cannot mean what they say
    specs/<service>/<api-version>/service-2.json
    specs/<service>/<api-version>/paginators-1.json
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harness.errors import InvalidArgument, ModelError, UnknownService

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "SEED_SERVICES",
    "SyncResult",
    "installed_botocore_version",
    "pinned_services",
    "read_json",
    "read_model_files",
    "specs_dir",
    "sync_specs",
]

#: The services this project pins and emulates.
SEED_SERVICES: tuple[str, ...] = (
    "iot",
    "greengrassv2",
    "iotwireless",
    "proton",
    "iot-managed-integrations",
)


def specs_dir() -> Path:
    """The directory that holds the pinned models.

    ``$HARNESS_SPECS_DIR`` wins; then ``specs/`` beside the package (a source checkout or an
    editable install); then the copy bundled inside an installed wheel.
    """
    env = os.environ.get("HARNESS_SPECS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "specs", here / "_specs"):
        if (candidate / "PROVENANCE.json").exists():
            return candidate
    return here.parent / "specs"


def read_json(path: Path) -> Any:
    """Read a JSON (or gzipped JSON) file with orjson.

    :raises ModelError: when the file is missing or not valid JSON
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None


def pinned_services() -> list[str]:
    """Names of the services with a pinned model under :func:`specs_dir`, sorted."""
    root = specs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*/service-2.json")))


def _botocore_data() -> Path:
    import botocore

    return Path(botocore.__file__).parent / "data"


def installed_botocore_version() -> str:
    """The version of the botocore installed next to harness."""
    import botocore

    return str(botocore.__version__)


def _latest_dir(service_dir: Path, service: str, known: Iterable[str]) -> Path:
    versions = (
        sorted(p for p in service_dir.iterdir() if p.is_dir()) if service_dir.is_dir() else []
    )
    if not versions:
        raise UnknownService(service, sorted(known))
    return versions[-1]


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.json", f"{stem}.json.gz"):
        if (directory / name).exists():
            return directory / name
    return None


def read_model_files(
    service: str, source: str = "pinned"
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Read a service's model and paginators.

    :param service: botocore service name (ignored when ``source`` is a file path)
    :param source: ``"pinned"`` (``specs/``), ``"botocore"`` (the installed botocore), or the path
        of a ``service-2.json`` file (its ``paginators-1.json`` sibling is read if present)
    :returns: ``(service model, paginators, description of where it came from)``
    :raises UnknownService: when no such model exists
    """
    if source == "pinned":
        root = specs_dir()
        directory = _latest_dir(root / service, service, pinned_services())
    elif source == "botocore":
        data = _botocore_data()
        directory = _latest_dir(data / service, service, ())
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidArgument(f"model file {source!r} does not exist")
        paginators_path = _find(path.parent, "paginators-1")
        paginators = read_json(paginators_path) if paginators_path else {}
        return read_json(path), paginators.get("pagination", {}), str(path)
    model_path = _find(directory, "service-2")
    if model_path is None:
        raise UnknownService(service, pinned_services())
    paginators_path = _find(directory, "paginators-1")
    paginators = read_json(paginators_path) if paginators_path else {}
    return read_json(model_path), paginators.get("pagination", {}), str(model_path)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What :func:`sync_specs` wrote for one service."""

    service: str
    api_version: str
    files: Mapping[str, str]  #: relative path -> sha256
    changed: bool


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sync_specs(services: Iterable[str] | None = None, dest: Path | None = None) -> list[SyncResult]:
    """Regenerate pinned models from the installed botocore and rewrite ``PROVENANCE.json``.

    :param services: which services (default: the five seed services)
    :param dest: the specs directory (default: :func:`specs_dir`)
    :raises UnknownService: when botocore has no model for a requested service
    """
    root = dest or specs_dir()
    data = _botocore_data()
    wanted = list(services) if services else list(SEED_SERVICES)
    provenance_path = root / "PROVENANCE.json"
    provenance: dict[str, Any] = read_json(provenance_path) if provenance_path.exists() else {}
    entries: dict[str, Any] = dict(provenance.get("services", {}))
    results: list[SyncResult] = []
    for service in wanted:
        src_dir = _latest_dir(data / service, service, sorted(p.name for p in data.iterdir()))
        out_dir = root / service / src_dir.name
        files: dict[str, str] = {}
        changed = False
        for stem in ("service-2", "paginators-1"):
            src = _find(src_dir, stem)
            if src is None:
                continue
            body = orjson.dumps(read_json(src), option=orjson.OPT_INDENT_2) + b"\n"
            rel = f"{service}/{src_dir.name}/{stem}.json"
            target = root / rel
            if not target.exists() or target.read_bytes() != body:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                changed = True
            files[rel] = _sha256(body)
        # Remove other API versions of this service so "latest" stays unambiguous.
        for old in (root / service).iterdir():
            if old.is_dir() and old != out_dir:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
                changed = True
        entries[service] = {"api_version": src_dir.name, "files": files}
        results.append(SyncResult(service, src_dir.name, files, changed))
    provenance = {
        "source": "botocore",
        "botocore_version": installed_botocore_version(),
        "synced_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "services": dict(sorted(entries.items())),
    }
    root.mkdir(parents=True, exist_ok=True)
    provenance_path.write_bytes(orjson.dumps(provenance, option=orjson.OPT_INDENT_2) + b"\n")
    return results
