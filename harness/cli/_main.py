"""The ``harness`` command group and its error handling."""

from __future__ import annotations

import sys
from typing import Any

import click
from botocore.exceptions import BotoCoreError

from harness import __version__
from harness.cli._emulator import emulator
from harness.cli._fuzz import fuzz, sweep_command
from harness.cli._load import load
from harness.cli._run import list_, run
from harness.cli._specs import specs
from harness.cli._target import explain
from harness.errors import HarnessError

__all__ = ["cli", "main"]

#: Exit status for bad input (usage, job files, models): the same as click's usage errors.
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """Batch and contract-testing harness for AWS IoT control-plane APIs.

    Bulk jobs, contract fuzzing and load tests against real AWS, any endpoint URL, or the
    embedded model-driven emulator.
    """


cli.add_command(emulator)
cli.add_command(fuzz)
cli.add_command(list_)
cli.add_command(load)
cli.add_command(run)
cli.add_command(specs)
cli.add_command(sweep_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``harness`` console script.

    Errors harness raises on purpose (:class:`~harness.errors.HarnessError`) and botocore's
    configuration errors print one line and exit with status 2; anything else is a bug and
    keeps its traceback.
    """
    try:
        return cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HarnessError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except BotoCoreError as exc:
        # A transport built where no check ran first (an unknown profile, no region, ...):
        # still one line, not a traceback.
        click.echo(f"error: {explain(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
