"""The journal: round trip, torn lines, resume (skip done, retry failed, keep feeding outputs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from trio.testing import MockClock

from harness.cli import main
from harness.engine import (
    Engine,
    Event,
    ItemFinished,
    Job,
    Journal,
    JournalState,
    RunStarted,
    RunSummary,
    parse_job,
    read_journal,
)
from harness.errors import JobError, JournalError
from harness.transport import Call, MockTransport, Reply

ARN = "arn:aws:iot:us-east-1:123456789012:thing/{}"


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def make_job(n: int = 5, name: str = "onboard") -> Job:
    return parse_job(
        {
            "name": name,
            "steps": [
                {
                    "name": "things",
                    "service": "iot",
                    "operation": "CreateThing",
                    "items": {"count": n},
                    "params": {"thingName": "dev-{{ index }}"},
                },
                {
                    "name": "membership",
                    "service": "iot",
                    "operation": "AddThingToThingGroup",
                    "items": {"from": "things"},
                    "params": {"thingArn": "{{ item.thingArn }}", "thingGroupName": "fleet"},
                },
            ],
        }
    )


FEEDING = frozenset({"things"})


def handler(fail: set[str], arn: str = ARN) -> Any:
    """Answer CreateThing with an ARN; fail the thing names (or ARNs) in ``fail``."""

    def answer(call: Call) -> Reply:
        name = call.params.get("thingName") or call.params.get("thingArn")
        if name in fail:
            return Reply(400, error_code="InvalidRequestException", error_message="no")
        if call.operation == "CreateThing":
            return Reply(200, output={"thingName": name, "thingArn": arn.format(name)})
        return Reply(200, output={})

    return answer


async def run(
    job: Job, transport: MockTransport, path: Path, state: JournalState | None = None
) -> tuple[RunSummary, list[Event]]:
    events: list[Event] = []
    journal = Journal(path, job.name)
    try:
        engine = Engine(job, transport, sink=events.append, journal=journal, resume_state=state)
        return await engine.run(), events
    finally:
        journal.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


class TestFile:
    def test_round_trip(self, tmp_path: Path) -> None:
        path = tmp_path / "runs" / "j.jsonl"
        journal = Journal(path, "job-a")
        journal.record("s", "1", "ok", attempts=1, latency=0.0123, output={"arn": "a1"})
        journal.record(
            "s", "2", "failed", attempts=3, latency=0.5, error_code="Boom", error_message="x" * 900
        )
        journal.record("t", "1", "ok", attempts=2, latency=0.1)
        journal.close()
        journal.close()  # twice is fine

        header, *entries = lines(path)
        assert header["journal"] == 1
        assert header["job"] == "job-a"
        assert entries[0] == {
            "step": "s",
            "key": "1",
            "status": "ok",
            "attempts": 1,
            "latency_ms": 12.3,
            "output": {"arn": "a1"},
        }
        assert entries[1]["error"] == {"code": "Boom", "message": "x" * 500}
        assert "output" not in entries[2]

        state = read_journal(path, keep_outputs=frozenset({"s"}))
        assert state.job == "job-a"
        assert state.lines == 3
        assert state.torn == 0
        assert state.is_done("s", "1")
        assert not state.is_done("s", "2")
        assert state.is_done("t", "1")
        assert not state.is_done("u", "1")
        assert state.output("s", "1") == {"arn": "a1"}
        assert state.output("t", "1") is None
        assert state.failed == {"s": 1}
        assert state.total_done == 2

    def test_outputs_are_kept_only_for_the_steps_asked(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        journal = Journal(path, "job")
        journal.record("s", "1", "ok", attempts=1, latency=0, output={"arn": "a1"})
        journal.close()
        assert read_journal(path).output("s", "1") is None
        assert read_journal(path).is_done("s", "1")

    def test_a_torn_last_line_is_ignored_and_the_next_run_starts_a_new_line(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "j.jsonl"
        journal = Journal(path, "job")
        journal.record("s", "1", "ok", attempts=1, latency=0)
        journal.close()
        with path.open("ab") as handle:
            handle.write(b'{"step": "s", "key": "2", "sta')  # killed mid-write
        state = read_journal(path)
        assert state.torn == 1
        assert state.is_done("s", "1")
        assert not state.is_done("s", "2")

        journal = Journal(path, "job")  # resume: appends after the torn line
        journal.record("s", "3", "ok", attempts=1, latency=0)
        journal.close()
        state = read_journal(path)
        assert state.torn == 1
        assert state.is_done("s", "3")
        assert state.lines == 2

    def test_lines_without_step_or_key_are_skipped(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        Journal(path, "job").close()
        with path.open("ab") as handle:
            handle.write(b'{"step": 1, "key": "a", "status": "ok"}\n[1, 2]\n')
        state = read_journal(path)
        assert state.total_done == 0
        assert state.torn == 2

    def test_not_a_journal(self, tmp_path: Path) -> None:
        path = tmp_path / "other.jsonl"
        path.write_text('{"step": "s", "key": "1", "status": "ok"}\n')
        with pytest.raises(JobError, match=r"other\.jsonl is not a harness journal"):
            read_journal(path)

    def test_missing_journal(self, tmp_path: Path) -> None:
        with pytest.raises(JobError, match=r"cannot read journal .*nope\.jsonl"):
            read_journal(tmp_path / "nope.jsonl")

    def test_an_empty_file_gets_a_header(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        path.touch()
        Journal(path, "job").close()
        assert lines(path)[0]["job"] == "job"

    def test_each_entry_is_one_write(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "j.jsonl"
        journal = Journal(path, "job")
        writes: list[bytes] = []
        real = os.write

        def spy(fd: int, data: bytes) -> int:
            writes.append(bytes(data))
            return real(fd, data)

        monkeypatch.setattr(os, "write", spy)
        journal.record("s", "1", "ok", attempts=1, latency=0, output={"a": "b" * 100})
        journal.close()
        assert len(writes) == 1
        assert writes[0].endswith(b"\n")


class TestResume:
    @pytest.mark.anyio
    async def test_the_engine_journals_every_item(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        summary, _ = await run(make_job(4), MockTransport(handler({"dev-2"})), path)
        assert summary.exit_code == 1
        entries = lines(path)[1:]
        statuses = {(e["step"], e["key"]): e["status"] for e in entries}
        assert statuses == {
            ("things", "0"): "ok",
            ("things", "1"): "ok",
            ("things", "2"): "failed",
            ("things", "3"): "ok",
            ("membership", "0"): "ok",
            ("membership", "1"): "ok",
            ("membership", "3"): "ok",
        }
        first = next(e for e in entries if e["step"] == "things" and e["key"] == "0")
        assert first["output"] == {"thingName": "dev-0", "thingArn": ARN.format("dev-0")}
        failed = next(e for e in entries if e["status"] == "failed")
        assert failed["error"]["code"] == "InvalidRequestException"

    @pytest.mark.anyio
    async def test_resume_skips_done_items_and_resends_failed_ones(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        job = make_job(5)
        await run(job, MockTransport(handler({"dev-1", "dev-3"})), path)

        state = read_journal(path, keep_outputs=FEEDING)
        assert state.total_done == 6  # 3 things + their 3 memberships
        transport = MockTransport(handler(set()))
        summary, events = await run(job, transport, path, state)
        assert summary.exit_code == 0
        sent = sorted(
            (c.operation, c.params.get("thingName") or c.params["thingArn"])
            for c in transport.calls
        )
        assert sent == [
            ("AddThingToThingGroup", ARN.format("dev-1")),
            ("AddThingToThingGroup", ARN.format("dev-3")),
            ("CreateThing", "dev-1"),
            ("CreateThing", "dev-3"),
        ]
        assert summary.steps["things"].skipped == 3
        assert summary.steps["things"].ok == 2
        assert summary.steps["membership"].skipped == 3
        assert summary.steps["membership"].ok == 2
        started = next(e for e in events if isinstance(e, RunStarted))
        assert started.resumed == 6
        skipped = [e for e in events if isinstance(e, ItemFinished) and e.status == "skipped"]
        assert len(skipped) == 6

        # a third run has nothing left to do
        third = MockTransport(handler(set()))
        summary, _ = await run(job, third, path, read_journal(path, keep_outputs=FEEDING))
        assert third.calls == []
        assert summary.steps["membership"].skipped == 5

    @pytest.mark.anyio
    async def test_downstream_items_of_done_upstream_items_use_the_recorded_outputs(
        self, tmp_path: Path
    ) -> None:
        # First run: every thing is created, every membership fails. The resumed run creates no
        # thing, yet the memberships get the ARNs the first run recorded.
        path = tmp_path / "j.jsonl"
        job = make_job(3)
        first_arns = {ARN.format(f"dev-{i}") for i in range(3)}
        await run(job, MockTransport(handler(first_arns)), path)

        state = read_journal(path, keep_outputs=FEEDING)
        assert state.output("things", "1") == {
            "thingName": "dev-1",
            "thingArn": ARN.format("dev-1"),
        }
        assert not state.done.get("membership")
        # A different ARN from the service now would show if it were called again.
        transport = MockTransport(handler(set(), arn="arn:aws:iot:us-east-1:1:thing/{}"))
        summary, _ = await run(job, transport, path, state)
        assert summary.exit_code == 0
        assert {c.operation for c in transport.calls} == {"AddThingToThingGroup"}
        assert {c.params["thingArn"] for c in transport.calls} == first_arns

    @pytest.mark.anyio
    async def test_outputs_of_steps_that_feed_nothing_are_not_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        await run(make_job(3), MockTransport(handler(set())), path)
        state = read_journal(path, keep_outputs=FEEDING)
        assert all(v is not None for v in state.done["things"].values())
        assert all(v is None for v in state.done["membership"].values())


class TestCli:
    def write_job(self, tmp_path: Path, name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nsteps:\n  - {{name: things, service: iot, operation: CreateThing, "
            "items: {count: 2}, params: {thingName: 'dev-{{ index }}'}}\n"
        )
        return path

    def test_a_journal_of_another_job_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        journal_path = tmp_path / "j.jsonl"
        journal = Journal(journal_path, "first-job")
        journal.record("things", "0", "ok", attempts=1, latency=0)
        journal.close()
        job = self.write_job(tmp_path, "second-job")
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "run",
                    str(job),
                    "--journal",
                    str(journal_path),
                    "--resume",
                    "--endpoint",
                    "http://127.0.0.1:9",
                    "--no-progress",
                ]
            )
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "belongs to job 'first-job', not 'second-job'" in err
        assert len(lines(journal_path)) == 2  # untouched

    def test_resume_needs_an_existing_journal(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        job = self.write_job(tmp_path, "job")
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "run",
                    str(job),
                    "--journal",
                    str(tmp_path / "none.jsonl"),
                    "--resume",
                    "--endpoint",
                    "http://127.0.0.1:9",
                ]
            )
        assert info.value.code == 2
        assert "does not exist" in capsys.readouterr().err

    def test_resume_of_something_that_is_not_a_journal(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        job = self.write_job(tmp_path, "job")
        other = tmp_path / "notes.jsonl"
        other.write_text("hello\n")
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "run",
                    str(job),
                    "--journal",
                    str(other),
                    "--resume",
                    "--endpoint",
                    "http://127.0.0.1:9",
                ]
            )
        assert info.value.code == 2
        assert "not a harness journal" in capsys.readouterr().err


@pytest.mark.anyio
async def test_journal_writes_survive_without_close(tmp_path: Path) -> None:
    # Written with os.write: in the kernel at once, as a SIGKILL would leave it.
    path = tmp_path / "j.jsonl"
    journal = Journal(path, "job")
    journal.record("s", "1", "ok", attempts=1, latency=0)
    await anyio.lowlevel.checkpoint()
    assert read_journal(path).is_done("s", "1")
    journal.close()


@pytest.mark.anyio
async def test_resume_lists_again_when_the_listing_feeds_a_step(tmp_path: Path) -> None:
    # A done list step forwards nothing from the journal (its elements are not recorded): the
    # listing must run again, or the elements its downstream step had not done would be lost.
    job = parse_job(
        {
            "name": "audit",
            "steps": [
                {"name": "listing", "kind": "list", "service": "iot", "operation": "ListThings"},
                {
                    "name": "describe",
                    "service": "iot",
                    "operation": "DescribeThing",
                    "items": {"from": "listing"},
                    "key": "{{ item.thingName }}",
                    "params": {"thingName": "{{ item.thingName }}"},
                },
            ],
        }
    )
    names = [f"dev-{i}" for i in range(4)]

    def answer(fail: set[str]) -> Any:
        def handler(call: Call) -> Reply:
            if call.operation == "ListThings":
                return Reply(200, output={"things": [{"thingName": n} for n in names]})
            if call.params["thingName"] in fail:
                return Reply(500, error_code="InternalFailureException")
            return Reply(200, output={"thingName": call.params["thingName"]})

        return handler

    path = tmp_path / "j.jsonl"
    job = replace_retries(job)
    first, _ = await run(job, MockTransport(answer({"dev-1", "dev-2"})), path)
    assert first.steps["describe"].failed == 2

    transport = MockTransport(answer(set()))
    summary, _ = await run(job, transport, path, read_journal(path))
    assert summary.exit_code == 0
    assert sorted(c.params.get("thingName", "") for c in transport.calls) == ["", "dev-1", "dev-2"]
    assert summary.steps["describe"].ok == 2
    assert summary.steps["describe"].skipped == 2


def replace_retries(job: Job) -> Job:
    from dataclasses import replace

    from harness.engine import RetrySettings

    return replace(job, retries=RetrySettings(max_attempts=1))


class TestTornHeaderLockAndErrors:
    def entries(self, path: Path) -> None:
        with path.open("ab") as handle:
            handle.write(b'{"step": "s", "key": "1", "status": "ok", "attempts": 1}\n')
            handle.write(b'{"step": "s", "key": "2", "status": "failed", "attempts": 1}\n')

    @pytest.mark.parametrize(
        "first",
        [
            b'{"journal": 1, "job": "jo',
            b'{"jour',
            b"",
            b"\0\0\0\0\0\0",
            b'{"journal":1,"job":"job",',
        ],
    )
    def test_a_torn_header_is_recovered(self, tmp_path: Path, first: bytes) -> None:
        path = tmp_path / "j.jsonl"
        path.write_bytes(first + b"\n")
        self.entries(path)
        state = read_journal(path)
        assert state.job is None  # unknown: the run's job is not checked against it
        assert state.torn == 1
        assert state.is_done("s", "1")
        assert state.failed == {"s": 1}

        journal = Journal(path, "job")  # resume appends; the header stays as it is
        journal.record("s", "2", "ok", attempts=1, latency=0)
        journal.close()
        state = read_journal(path)
        assert state.is_done("s", "2") and state.torn == 1

    def test_a_header_torn_without_its_newline(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        path.write_bytes(b'{"journal": 1, "jo')  # killed while writing the header
        assert read_journal(path).total_done == 0
        journal = Journal(path, "job")
        journal.record("s", "1", "ok", attempts=1, latency=0)
        journal.close()
        assert path.read_bytes().splitlines()[1] == (
            b'{"step":"s","key":"1","status":"ok","attempts":1,"latency_ms":0}'
        )
        assert read_journal(path).is_done("s", "1")

    @pytest.mark.parametrize("first", [b"hello", b'{"step": "s"}', b"[1]", b"key,value"])
    def test_other_files_are_still_refused(self, tmp_path: Path, first: bytes) -> None:
        path = tmp_path / "notes.jsonl"
        path.write_bytes(first + b"\n")
        self.entries(path)
        before = path.read_bytes()
        journal = Journal(path, "job")  # a refused file is not written to
        with pytest.raises(JobError, match="is not a harness journal"):
            read_journal(path)
        journal.discard()
        assert path.read_bytes() == before

    def test_created_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "runs" / "j.jsonl"
        Journal(path, "job").close()
        assert path.stat().st_mode & 0o777 == 0o600

    def test_a_second_journal_on_the_same_file_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        first = Journal(path, "job")
        first.record("s", "1", "ok", attempts=1, latency=0)
        with pytest.raises(JournalError, match=r"j\.jsonl is in use by another harness run"):
            Journal(path, "job")
        first.close()
        second = Journal(path, "job")  # released on close
        second.close()
        assert read_journal(path).total_done == 1

    def test_discard_removes_only_a_journal_it_created_and_left_empty(self, tmp_path: Path) -> None:
        path = tmp_path / "j.jsonl"
        Journal(path, "job").discard()
        assert not path.exists()
        journal = Journal(path, "job")
        journal.record("s", "1", "ok", attempts=1, latency=0)
        journal.discard()
        assert read_journal(path).total_done == 1
        Journal(path, "job").discard()  # not created by this one: kept
        assert read_journal(path).total_done == 1

    def test_a_failed_write_is_cut_back_to_the_last_whole_line(self, tmp_path: Path) -> None:
        # RLIMIT_FSIZE makes the kernel write part of a line and refuse the rest (EFBIG):
        # the journal removes the part, raises JournalError, and keeps what came before.
        path = tmp_path / "j.jsonl"
        script = f"""
import resource
from pathlib import Path
from harness.engine import Journal
from harness.errors import JournalError
journal = Journal(Path({str(path)!r}), "job")
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
for n in range(100):
    try:
        journal.record("s", str(n), "ok", attempts=1, latency=0, output={{"arn": "x" * 50}})
    except JournalError as exc:
        print(n, exc)
        break
"""
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        number, message = done.stdout.split(" ", 1)
        assert message.strip() == (
            f"cannot write journal {path}: File too large; the entries written before are intact"
        )
        data = path.read_bytes()
        assert data.endswith(b"\n")
        state = read_journal(path)
        assert state.torn == 0
        assert state.total_done == int(number) > 10
