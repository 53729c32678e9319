"""Without the ``fuzz`` extra: the commands that need it say what to install and exit 2; the
others work.

Each case runs harness in a real subprocess where the extra's packages cannot be imported, in
the two ways a base install can look: absent (``None`` in ``sys.modules``, which is what Python
does for a module it must not import), and present but broken (a directory on ``PYTHONPATH``
shadowing them with packages that raise ImportError; it reaches child processes too, such as
the embedded emulator of ``harness run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli._extras import extra_packages, install_command

BLOCKED = ("hypothesis", "schemathesis")
# Runs harness.cli.main with the arguments after -c, the extra's packages made unimportable.
WRAPPER = (
    "import sys\n"
    "for name in sys.argv.pop(1).split(','):\n"
    "    sys.modules[name] = None\n"
    "from harness.cli import main\n"
    "main()\n"
)
NEEDS_EXTRA = [
    ("harness fuzz", ["fuzz", "--endpoint", "http://127.0.0.1:9", "--operation", "ListThings"]),
    ("harness sweep", ["sweep", "--run-id", "abcd1234", "--endpoint", "http://127.0.0.1:9"]),
    ("harness specs openapi", ["specs", "openapi", "iot"]),
]


def blocked(
    *args: str, names: tuple[str, ...] = BLOCKED, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, ",".join(names), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def shadowed(tmp_path: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH shadows the extra's packages with broken ones."""
    shadow = tmp_path / "shadow"
    for name in BLOCKED:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed in this environment')\n"
        )
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


CHECKOUT = Path(__file__).resolve().parents[2]


def expected_install(cwd: Path | None) -> str:
    """The install command harness names when run in ``cwd`` (harness is installed editable
    from its checkout in the test environment: the checkout, ``.`` when it is the cwd)."""
    where = "." if (cwd or Path.cwd()).resolve() == CHECKOUT else str(CHECKOUT)
    return f"{sys.executable} -m pip install -e '{where}[fuzz]'"


def assert_one_line_exit_2(
    done: subprocess.CompletedProcess[str], command: str, package: str, cwd: Path | None = None
) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"Error: {command} needs {package} from the optional 'fuzz' extra")
    assert line.endswith(f"install it with: {expected_install(cwd)}")


def test_the_extra_is_read_from_the_installed_metadata() -> None:
    # pyproject.toml's fuzz extra: hypothesis and schemathesis.
    assert extra_packages("fuzz") == ("hypothesis", "schemathesis")
    assert extra_packages("no-such-extra") == ()


def test_the_install_command_targets_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert install_command("fuzz") == expected_install(None)
    monkeypatch.chdir(CHECKOUT)
    assert install_command("fuzz") == f"{sys.executable} -m pip install -e '.[fuzz]'"


@pytest.mark.parametrize(("command", "args"), NEEDS_EXTRA, ids=[c for c, _ in NEEDS_EXTRA])
def test_commands_needing_the_extra_name_it_and_exit_2(command: str, args: list[str]) -> None:
    assert_one_line_exit_2(blocked(*args), command, "hypothesis")


def test_the_first_missing_package_is_named(tmp_path: Path) -> None:
    done = blocked("specs", "openapi", "iot", names=("schemathesis",), cwd=tmp_path)
    assert_one_line_exit_2(done, "harness specs openapi", "schemathesis", cwd=tmp_path)
    assert "import of schemathesis halted" in done.stderr


@pytest.mark.parametrize(("command", "args"), NEEDS_EXTRA, ids=[c for c, _ in NEEDS_EXTRA])
def test_a_broken_package_of_the_extra_is_named(
    command: str, args: list[str], shadowed: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=shadowed,
    )
    assert_one_line_exit_2(done, command, "hypothesis")
    assert "hypothesis is not installed in this environment" in done.stderr


def test_help_works_without_the_extra() -> None:
    for args in ([], ["--help"], ["fuzz", "--help"], ["sweep", "--help"], ["specs", "--help"]):
        done = blocked(*args) if args else blocked("--help")
        assert done.returncode == 0, (args, done.stderr)
        assert "Usage:" in done.stdout and "Traceback" not in done.stderr


def test_other_commands_work_without_the_extra(tmp_path: Path, shadowed: dict[str, str]) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: tiny\n"
        "steps:\n"
        "  - name: things\n"
        "    service: iot\n"
        "    operation: CreateThing\n"
        "    items: {count: 5}\n"
        '    params: {thingName: "t-{{ index }}"}\n'
    )

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=shadowed,
            cwd=tmp_path,
        )

    # The embedded emulator is a child process: it sees the broken packages too.
    done = harness("run", str(job), "--no-progress", "--journal", str(tmp_path / "j.jsonl"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    done = harness("specs", "show", "iot", "CreateThing")
    assert done.returncode == 0, done.stderr
    assert "thingName" in done.stdout
