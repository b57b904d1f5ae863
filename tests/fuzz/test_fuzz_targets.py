"""Every fuzz target of ``fuzz/targets/`` runs a fixed short time under atheris (in a subprocess,
through ``fuzz/run.py``) and nothing escapes; ``make fuzz`` runs them longer. A run that finds an
escaping exception exits non-zero and keeps the input under ``crashes/``: make it a regression
test, then fix the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = sorted(p.stem for p in (REPO / "fuzz" / "targets").glob("*.py") if p.stem[0] != "_")
# 10 s each in `make test` (a smoke run: the CI budget holds the cluster suite too); `make fuzz`
# runs each for FUZZ_SECONDS (600 by default)
SECONDS = int(os.environ.get("RTC_FUZZ_TEST_SECONDS", "10"))


def run_fuzz(repo: Path, name: str, corpus: Path, seconds: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(REPO)])}
    command = [sys.executable, str(repo / "fuzz" / "run.py"), name, "--seconds", str(seconds)]
    command += ["--corpus", str(corpus)]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )


def test_the_targets_are_found_by_listing_the_folder() -> None:
    assert {"frame_processor", "capture_line"} <= set(TARGETS)
    listed = subprocess.run(
        [sys.executable, str(REPO / "fuzz" / "run.py"), "--list"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert listed.stdout.split() == TARGETS


@pytest.mark.parametrize("name", TARGETS)
def test_a_short_fuzz_run_finds_no_escape(name: str, tmp_path: Path) -> None:
    result = run_fuzz(REPO, name, tmp_path / "corpus", SECONDS)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert summary.startswith(f"fuzz {name}: ") and summary.endswith("no escape"), summary
    assert len(list((tmp_path / "corpus").iterdir())) > 0
    assert not any((tmp_path / "crashes").iterdir())


def test_an_escaping_exception_fails_the_run_and_keeps_the_input(tmp_path: Path) -> None:
    """The harness itself: a target that raises on some input makes run.py exit non-zero."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "fuzz", copy / "fuzz", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "fuzz" / "targets" / "boom.py").write_text(
        "def test_one_input(data: bytes) -> None:\n"
        "    if data[:1] == b'!':\n"
        "        raise ValueError('escaped')\n\n\n"
        "def seed_corpus() -> list[bytes]:\n"
        "    return [b'!boom']\n"
    )
    result = run_fuzz(copy, "boom", tmp_path / "corpus", 30)
    assert result.returncode != 0
    assert "ESCAPE" in result.stdout and "escaped" in result.stdout
    assert any((tmp_path / "crashes").iterdir())
