"""What the fuzzers may send to real AWS, and how what they create is marked as theirs.

Against AWS (``--endpoint aws``, or ``--safety aws`` to rehearse against another endpoint) a
fuzz run is read-only unless it is given ``--allow-writes``:

* read operations (``Get``, ``List``, ``Describe``, ``Search``, ``Query``) are always sent;
* a *valid* request of any other operation is a write and is refused without the flag; with it,
  only the writes of the seed resource types are sent (:data:`WRITE_OPERATIONS`): the run can
  delete what those create, and nothing else;
* an *invalid* request of a write operation is sent without the flag only when the service must
  reject it before acting: a required member missing, or a member of the wrong JSON type in the
  body (refused while deserializing). A too-long name or a broken pattern is not enough: models
  carry constraints that services do not enforce, and an "invalid" create the service accepts is
  a real create;
* every write carries the run: each ``*Name`` member starts with ``harness-RUNID-`` (so updates and
  deletes can only touch the run's own resources) and creates that take tags get
  ``harness-run-id: RUNID``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import InvalidArgument
from harness.fuzz._sendable import resolve_path, unsendable

if TYPE_CHECKING:
    from harness.fuzz._invalid import Breakage
    from harness.model import Operation, Shape

__all__ = [
    "READ_VERBS",
    "RUN_TAG",
    "WRITE_OPERATIONS",
    "SafetyPolicy",
    "is_read_only",
    "new_run_id",
]

#: Verbs of operations that only read. Every other verb (Create, Update, Delete, Put, Add,
#: Remove, Tag, Untag, Start, Cancel, Associate, Register, Test, Validate...) counts as a write:
#: an unknown verb is treated as the riskier kind.
READ_VERBS = ("Get", "List", "Describe", "Search", "Query")
#: The tag key that marks what a run created.
RUN_TAG = "harness-run-id"
#: The writes a run may send to AWS with ``--allow-writes``: those of the seed resource types,
#: whose creations the run tracks and deletes (and ``harness sweep`` finds).
WRITE_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    [
        *(
            ("iot", op)
            for op in (
                "CreateThing",
                "UpdateThing",
                "DeleteThing",
                "CreateThingGroup",
                "UpdateThingGroup",
                "DeleteThingGroup",
                "AddThingToThingGroup",
                "RemoveThingFromThingGroup",
                "CreatePackage",
                "UpdatePackage",
                "DeletePackage",
                "CreatePackageVersion",
                "UpdatePackageVersion",
                "DeletePackageVersion",
            )
        ),
        *(
            ("greengrassv2", op)
            for op in ("CreateDeployment", "CancelDeployment", "DeleteDeployment")
        ),
        *(
            ("proton", f"{verb}EnvironmentTemplate{version}")
            for verb in ("Create", "Update", "Delete")
            for version in ("", "Version")
        ),
        *(("iotwireless", f"{verb}FuotaTask") for verb in ("Create", "Update", "Delete")),
        *(
            ("iot-managed-integrations", f"{verb}OtaTask")
            for verb in ("Create", "Update", "Delete")
        ),
    ]
)
#: Breakages a service must refuse before it acts on anything (see the module docstring).
_MUST_REJECT = frozenset({"required", "type"})
_RUN_ID = re.compile(r"[a-z0-9]{4,16}")
_VERB = re.compile(r"[A-Z][a-z]*")


def is_read_only(op: Operation) -> bool:
    """Whether ``op`` only reads, judged by its verb (``ListThings``: yes; ``TagResource``: no)."""
    match = _VERB.match(op.name)
    return match is not None and match.group(0) in READ_VERBS


def new_run_id() -> str:
    """A fresh run id: 8 lowercase hex digits."""
    return uuid.uuid4().hex[:8]


def _check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidArgument(f"run_id={run_id!r}: expected 4 to 16 lowercase letters or digits")
    return run_id


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    """Which requests a run may send, and how it marks its writes.

    :param mode: ``"aws"`` applies the rules of the module docstring; ``"off"`` sends everything
        unchanged (emulators, moto)
    :param allow_writes: let valid writes of the seed resource types through
    :param run_id: marks the run's resources (names ``harness-RUNID-...``, tag ``harness-run-id``)
    """

    mode: Literal["aws", "off"] = "off"
    allow_writes: bool = False
    run_id: str = "local"

    def __post_init__(self) -> None:
        if self.mode not in ("aws", "off"):
            raise InvalidArgument(f"mode={self.mode!r}: expected 'aws' or 'off'")
        _check_run_id(self.run_id)

    @property
    def prefix(self) -> str:
        """The name prefix of the run's resources."""
        return f"harness-{self.run_id}-"

    def refuses(self, op: Operation) -> str | None:
        """Why valid requests of ``op`` must not be sent, or ``None``."""
        if self.mode == "off" or is_read_only(op):
            return None
        if not self.allow_writes:
            return f"{op.name} writes; pass --allow-writes to send valid requests"
        if (op.service.name, op.name) not in WRITE_OPERATIONS:
            return f"{op.name} is not a write of the seed resource types the run can clean up"
        return None

    def refuses_invalid(
        self, op: Operation, params: dict[str, Any], breakage: Breakage
    ) -> str | None:
        """Why this invalid request of ``op`` must not be sent, or ``None``.

        An allowed write's invalid request is sent unless it could act unmarked: :meth:`stamp`
        leaves the broken member as drawn, so a breakage that cannot reach the service as
        broken (a number in a URI label arrives as the text ``"12345"``), or one of the very
        member that marks the resource (a name, the tags) that the service might accept, would
        create a resource no sweep can tell from another's.
        """
        if self.refuses(op) is None:
            if self.mode == "off" or is_read_only(op):
                return None
            if unsendable(op, params, breakage) is not None:
                return "the breakage would not reach the service as broken: it would act unmarked"
            top = _top_member(breakage.path) or ""
            if not (top.lower().endswith("name") or top in ("tags", "Tags")):
                return None
        location, _ = resolve_path(op, breakage.path)
        if breakage.constraint not in _MUST_REJECT or location not in (None, "body"):
            return f"AWS might accept a {breakage.constraint} breakage of {op.name} and act on it"
        if unsendable(op, params, breakage) is not None:
            return "the breakage would not reach AWS as broken"
        return None

    def stamp(
        self,
        op: Operation,
        params: dict[str, Any],
        broken: str | None = None,
        *,
        names: bool = True,
    ) -> dict[str, Any]:
        """A copy of ``params`` marked as the run's: name members prefixed, the run tag added.

        Reads and runs in mode ``"off"`` are returned unchanged. ``broken`` is the validator path
        of an invalid request's breakage: its member is left as it is. ``names=False`` adds the
        tag only (the state machines name their resources with the prefix themselves, and give
        child resources, such as package versions, names of their own).
        """
        if self.mode == "off" or is_read_only(op) or op.input is None:
            return params
        out = dict(params)
        skip = _top_member(broken)
        for name, ref in op.input.members.items() if names else ():
            if name == skip or ref.shape.type != "string" or not name.lower().endswith("name"):
                continue
            value = out.get(name)
            if isinstance(value, str) and not value.startswith(self.prefix):
                limit = int(ref.shape.max) if ref.shape.max is not None else None
                out[name] = (self.prefix + value)[:limit]
        for name in ("tags", "Tags"):
            tags = op.input.members.get(name)
            if tags is not None and name != skip and op.name.startswith("Create"):
                out[name] = _with_tag(tags.shape, out.get(name), self.run_id)
        return out


def _top_member(path: str | None) -> str | None:
    if not path:
        return None
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _with_tag(shape: Shape, tags: Any, run_id: str) -> Any:
    """``tags`` (a map or a list of key/value structures) with the run tag in it."""
    if shape.type == "map":
        merged = dict(tags) if isinstance(tags, dict) else {}
        if RUN_TAG not in merged and shape.max is not None and len(merged) >= shape.max:
            merged.pop(next(iter(merged)))
        merged[RUN_TAG] = run_id
        return merged
    item = shape.member.shape if shape.type == "list" and shape.member is not None else None
    if item is None or item.type != "structure":
        return tags
    names = {name.lower(): name for name in item.members}
    key, value = names.get("key"), names.get("value")
    if key is None or value is None:
        return tags
    listed = [t for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    listed = [t for t in listed if t.get(key) != RUN_TAG]
    if shape.max is not None and len(listed) >= shape.max:
        listed = listed[: int(shape.max) - 1]
    return [*listed, {key: RUN_TAG, value: run_id}]
