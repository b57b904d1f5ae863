"""Run one fuzz target with atheris (libFuzzer) for a fixed time.

    python fuzz/run.py frame_processor --seconds 600 [--corpus DIR] [--max-len BYTES]

Targets are the modules of ``fuzz/targets/`` (``--list`` names them). The corpus folder (default
``.rtc/fuzz/<name>/corpus``) is seeded with the target's ``seed_corpus()`` when empty and keeps
what the fuzzer finds; libFuzzer's output goes to ``<corpus>/../fuzz.log``. A crashing input is
written to ``<corpus>/../crashes/``, the end of the output (the traceback) is printed and the run
exits non-zero. The last line printed is a summary: ``fuzz <name>: <runs> runs in <s> s, <execs/s>
execs/s, corpus <n> inputs, <coverage> coverage, no escape`` (or ``ESCAPE``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = REPO / "fuzz" / "targets"
DEFAULT_MAX_LEN = 16_384  # bytes per input: a few frames or lines (1,000-deep nesting fits)
ESCAPE_LINES = 60  # of libFuzzer's output printed on an escape (all of it in <corpus>/../fuzz.log)
STATS = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+).*?corp: (\d+)/\S+.*?exec/s: (\d+)")


def target_names() -> list[str]:
    """Every target in ``fuzz/targets/`` (one module each), sorted."""
    return sorted(p.stem for p in TARGETS.glob("*.py") if not p.stem.startswith("_"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fuzz/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a target of fuzz/targets/ (see --list)")
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (kept)")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, dest="max_len")
    parser.add_argument("--list", action="store_true", help="print the target names and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        return args
    if args.name not in target_names():
        parser.error(f"unknown target {args.name!r}: choose one of {', '.join(target_names())}")
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    if args.max_len <= 0:
        parser.error("--max-len must be > 0")
    return args


def write_seeds(name: str, corpus: Path) -> int:
    """Write the target's seed corpus into ``corpus`` if it holds nothing yet; the count."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return 0
    module = importlib.import_module(f"fuzz.targets.{name}")
    seeds = module.seed_corpus()
    for seed in seeds:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len(seeds)


def run_child(args: argparse.Namespace) -> None:
    """In the child: instrument the project's code, then hand over to libFuzzer (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["rtcrypto", "fuzz"]):
        module = importlib.import_module(f"fuzz.targets.{args.name}")
    crashes = args.corpus.parent / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        "-timeout=20",
        str(args.corpus),
    ]
    atheris.Setup(libfuzzer, module.test_one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(target_names()))
        return 0
    corpus = args.corpus or REPO / ".rtc" / "fuzz" / args.name / "corpus"
    args.corpus = corpus.resolve()
    if args.child:
        run_child(args)
        return 0
    seeded = write_seeds(args.name, args.corpus)
    command = [sys.executable, str(Path(__file__).resolve()), args.name, "--child"]
    command += ["--seconds", str(args.seconds), "--corpus", str(args.corpus)]
    command += ["--max-len", str(args.max_len)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    child = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed_s = time.monotonic() - started
    log_file = args.corpus.parent / "fuzz.log"
    log_file.write_text(child.stdout)
    stats = STATS.findall(child.stdout)
    inputs = sum(1 for _ in args.corpus.iterdir())
    if child.returncode != 0 or not stats:
        print("\n".join(child.stdout.splitlines()[-ESCAPE_LINES:]))
        print(
            f"fuzz {args.name}: ESCAPE (exit {child.returncode}) after {elapsed_s:.0f} s; "
            f"crashing inputs in {args.corpus.parent / 'crashes'}"
        )
        return 1
    runs, coverage, _, execs = stats[-1]
    print(
        f"fuzz {args.name}: {runs} runs in {elapsed_s:.0f} s, {execs} execs/s, corpus "
        f"{inputs} inputs ({seeded} seeds written), {coverage} coverage, no escape"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
