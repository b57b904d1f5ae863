"""Packaging: every third-party module the code imports is declared, and the ranges in
``pyproject.toml`` agree with the exact pins CI installs (``requirements.txt`` + ``constraints.txt``).

The imports are read with ``ast`` (module level and inside functions); a module is mapped to the
distributions that provide it through the installed metadata, an ``airflow.providers.X[.Y]``
import to its provider distribution ``apache-airflow-providers-X[-Y]``.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]

PRODUCTION = ("rtcrypto", "streaming", "spark_jobs", "dags", "plugins")
TEST_CODE = ("tests", "bench", "fuzz")
LOCAL = frozenset({*PRODUCTION, *TEST_CODE, "rtc_airflow"})


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def declared(*extras: str) -> dict[str, Requirement]:
    """The requirements of the runtime dependencies and of ``extras``, by canonical name."""
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in requirements if r.name != project["name"]}


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def third_party_imports(folders: tuple[str, ...], root: Path = REPO) -> dict[str, set[str]]:
    """Imported non-stdlib, non-local modules -> the files importing them (``airflow.providers``
    imports keep their provider path, e.g. ``airflow.providers.apache.spark``)."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    top = parts[0]
                    if top in sys.stdlib_module_names or top in LOCAL or top == "__future__":
                        continue
                    key = ".".join(parts[:4]) if parts[:2] == ["airflow", "providers"] else top
                    found.setdefault(key, set()).add(str(path.relative_to(root)))
    return found


def distributions_of(module: str) -> set[str]:
    """The installed distributions that provide ``module`` (canonical names)."""
    parts = module.split(".")
    if parts[:2] == ["airflow", "providers"]:
        candidates = ["-".join(parts[2:3]), "-".join(parts[2:4])]
        names = {f"apache-airflow-providers-{c}" for c in candidates if c}
        return {canonicalize_name(n) for n in names if _installed(n)}
    provided = _packages_distributions().get(module, [])
    return {canonicalize_name(name) for name in provided}


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def undeclared(imports: dict[str, set[str]], allowed: set[str]) -> list[str]:
    """``module (files): provided by ...`` for each import none of whose distributions is allowed."""
    problems = []
    for module, files in sorted(imports.items()):
        providers = distributions_of(module)
        if not providers & allowed:
            where = ", ".join(sorted(files)[:3])
            by = ", ".join(sorted(providers)) or "no installed distribution"
            problems.append(f"{module} ({where}): provided by {by}")
    return problems


def test_every_module_production_code_imports_is_a_declared_dependency() -> None:
    problems = undeclared(third_party_imports(PRODUCTION), set(declared()))
    assert problems == [], "declare these in pyproject.toml [project] dependencies:\n" + "\n".join(
        problems
    )


def test_every_module_tests_bench_and_fuzz_import_is_declared_with_the_test_extra() -> None:
    problems = undeclared(third_party_imports(TEST_CODE), set(declared("test")))
    assert problems == [], "declare these in the `test` extra:\n" + "\n".join(problems)


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "rtcrypto"
    package.mkdir()
    (package / "planted.py").write_text(
        "import os\nfrom rtcrypto import config\n\ndef later():\n    import yaml\n"
        "    from airflow.providers.apache.spark.hooks import spark_submit\n",
        encoding="utf-8",
    )
    imports = third_party_imports(("rtcrypto",), root=tmp_path)
    assert set(imports) == {"yaml", "airflow.providers.apache.spark"}
    problems = undeclared(imports, set(declared()))
    assert len(problems) == 1 and problems[0].startswith("yaml (rtcrypto/planted.py)"), problems
    assert undeclared(imports, set(declared("test"))) == []


def test_every_range_has_a_lower_and_an_upper_bound() -> None:
    for name, requirement in declared("test", "dev").items():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{name}: give it `>=LOW,<HIGH` ({requirement})"


@pytest.mark.parametrize("extras", [(), ("test", "dev")])
def test_ci_pins_every_declared_distribution_inside_its_range(extras: tuple[str, ...]) -> None:
    required = pins(REPO / "requirements.txt")
    constrained = pins(REPO / "constraints.txt")
    for name, requirement in declared(*extras).items():
        assert name in required, f"{name}: pin it in requirements.txt (what CI installs)"
        assert required[name] in requirement.specifier, f"{name}=={required[name]} vs {requirement}"
        if name in constrained:
            assert constrained[name] == required[name], f"{name}: requirements vs constraints"


def test_requirements_and_constraints_agree() -> None:
    required = pins(REPO / "requirements.txt")
    constrained = pins(REPO / "constraints.txt")
    differ = {n: (v, constrained[n]) for n, v in required.items() if constrained.get(n, v) != v}
    assert differ == {}
    everything = set(declared("test", "dev"))
    assert set(required) - everything == set(), (
        "requirements.txt pins what pyproject does not declare"
    )


def test_the_installed_versions_are_the_pins() -> None:
    """The venv the tests run in was installed from the pins (a stale venv would mislead)."""
    for name, version in pins(REPO / "requirements.txt").items():
        assert importlib.metadata.version(name) == version, name


def test_requires_python_covers_the_running_interpreter() -> None:
    from packaging.specifiers import SpecifierSet

    supported = SpecifierSet(pyproject()["project"]["requires-python"])
    assert ".".join(map(str, sys.version_info[:3])) in supported
    assert "3.11.0" in supported
