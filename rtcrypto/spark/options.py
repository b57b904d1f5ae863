"""A Spark job's options as one dataclass: rendered to its command line and parsed back.

The launcher builds the dataclass (from ``Settings``, with overrides) and renders it with
``to_args``; the job reads the same dataclass back with ``parse_job_args``, which derives every
flag (name, type, default, help) from the dataclass's fields. One definition per option: adding
a field adds the flag on both sides. Secrets never travel as options: the job reads them from
``Settings`` (its environment) itself. Nothing here imports pyspark.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Collection, Sequence
from dataclasses import fields, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, TypeVar

Options = TypeVar("Options")

OPTION_TYPES = (str, int, float, Path)


def flag(name: str) -> str:
    """``--event-time-window-s`` for the field ``event_time_window_s``."""
    return f"--{name.replace('_', '-')}"


def to_args(options: Any, *, skip: Collection[str] = ()) -> list[str]:
    """``--name value`` for every field of ``options`` except ``skip`` and ``None`` values."""
    args: list[str] = []
    for item in fields(options):
        value = getattr(options, item.name)
        if item.name in skip or value is None:
            continue
        args += [flag(item.name), str(value)]
    return args


def option_type(hint: Any) -> type:
    """The argparse type of a field annotation (``str``, ``int``, ``float``, ``Path``, each
    optionally ``| None``)."""
    members = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
    kinds = [member for member in members if member is not NoneType]
    if len(kinds) != 1 or kinds[0] not in OPTION_TYPES:
        raise TypeError(f"unsupported option annotation {hint!r}")
    return typing.cast(type, kinds[0])


def parse_job_args(
    defaults: Options,
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    skip: Collection[str] = (),
) -> Options:
    """``defaults`` with the fields given on the command line ``argv`` replaced.

    A value the dataclass refuses (its ``__post_init__`` raises ``ValueError``) ends the program
    with argparse's usage error (exit code 2) and the dataclass's message.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = typing.get_type_hints(type(defaults))
    for item in fields(defaults):  # type: ignore[arg-type]
        if item.name in skip:
            continue
        parser.add_argument(
            flag(item.name),
            type=option_type(hints[item.name]),
            default=getattr(defaults, item.name),
            help=item.metadata.get("help"),
        )
    given = vars(parser.parse_args(argv))
    try:
        return replace(defaults, **given)  # type: ignore[type-var]
    except ValueError as error:
        parser.error(str(error))
