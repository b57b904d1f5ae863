"""The soak test's pure parts (bench/soak_metrics.py, bench/soak_report.py, bench/soak.py):
/proc parsing, process trees, the RSS slope, the verdicts, the capture's change rate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.soak import capture_changes_per_s, check, parse_args
from bench.soak_metrics import (
    MB,
    ProcInfo,
    descendants,
    flat_rows,
    parse_stat,
    parse_vm_rss_bytes,
    persistent_series,
    second_half_slopes,
    slope_per_hour,
    steady_rss_mb,
    tree_rss,
)
from bench.soak_report import memory_verdict, nearest
from tests.helpers import GEMINI_CAPTURE


@given(
    comm=st.text(st.characters(blacklist_characters="\n\x00"), max_size=15),
    ppid=st.integers(min_value=0, max_value=2**22),
)
def test_parse_stat_reads_comm_and_ppid_whatever_the_name(comm: str, ppid: int) -> None:
    text = f"4242 ({comm}) S {ppid} 4242 4242 0 -1 4194560 1 2 3 4 5\n"
    assert parse_stat(text) == (comm, ppid)


def test_parse_stat_of_a_name_with_spaces_and_parentheses() -> None:
    assert parse_stat("77 (airflow (x) y) S 12 77 77 0") == ("airflow (x) y", 12)


def test_vm_rss_in_bytes_and_zero_without_it() -> None:
    assert parse_vm_rss_bytes("Name:\tjava\nVmRSS:\t  204800 kB\nThreads: 3\n") == 204800 * 1024
    assert parse_vm_rss_bytes("Name:\tkthreadd\nState:\tS\n") == 0


def _table(*rows: tuple[int, int, str, int]) -> dict[int, ProcInfo]:
    return {pid: ProcInfo(pid, ppid, comm, rss_mb * MB) for pid, ppid, comm, rss_mb in rows}


def test_process_tree_sums_children_and_grandchildren_by_name() -> None:
    # spark-submit: bash -> java (driver JVM) -> python (the job); an unrelated process beside it
    table = _table(
        (10, 1, "bash", 4), (11, 10, "java", 600), (12, 11, "python3", 150), (20, 1, "java", 900)
    )
    assert descendants(10, table) == [11, 12]
    tree = tree_rss(10, table)
    assert tree["rss_mb"] == 754.0
    assert tree["processes"] == 3
    assert tree["by_comm_mb"] == {"bash": 4.0, "java": 600.0, "python3": 150.0}


def test_slope_in_units_per_hour_and_none_when_undetermined() -> None:
    points = [(minute * 60.0, 100.0 + minute) for minute in range(10)]  # +1 MB per minute
    slope = slope_per_hour(points)
    assert slope is not None and math.isclose(slope, 60.0)
    assert slope_per_hour(points[:2]) is None
    assert slope_per_hour([(5.0, 1.0)] * 4) is None


def _sample(elapsed_s: float, **trees: dict[int, float]) -> dict[str, object]:
    return {
        "elapsed_s": elapsed_s,
        "rss": {
            name: {
                "rss_mb": sum(tree.values()),
                "by_pid_mb": {str(p): mb for p, mb in tree.items()},
            }
            for name, tree in trees.items()
        },
    }


def test_second_half_slope_ignores_the_warm_up() -> None:
    samples = [_sample(t, kafka={7: 300.0 + min(t, 1800)}) for t in range(0, 3601, 60)]
    slopes = second_half_slopes(samples, 3600)
    assert slopes == {"kafka": {"persistent": 0.0, "tree": 0.0}}


def test_short_lived_children_do_not_count_as_growth_but_a_growing_process_does() -> None:
    # airflow: a steady api-server (pid 1) and a task process (pid 1000 + t) every other sample;
    # trader: +1 MB per minute
    samples = [
        _sample(
            t,
            airflow={1: 900.0, **({1000 + t: 250.0} if (t // 60) % 2 else {})},
            trader={2: 200.0 + t / 60},
        )
        for t in range(1800, 3601, 60)
    ]
    slopes = second_half_slopes(samples, 3600)
    assert slopes["airflow"]["persistent"] == 0.0
    assert slopes["airflow"]["tree"] is not None and slopes["airflow"]["tree"] != 0.0
    assert math.isclose(slopes["trader"]["persistent"] or 0.0, 60.0)
    assert persistent_series(samples[:3], "airflow") == [
        (1800.0, 900.0),
        (1860.0, 900.0),
        (1920.0, 900.0),
    ]


def test_memory_verdict_fails_on_growth_and_on_missing_slopes() -> None:
    assert memory_verdict({"kafka": 3.0, "trader": -20.0}, 50.0) == (True, [])
    ok, problems = memory_verdict({"kafka": 75.5, "trader": None}, 50.0)
    assert not ok and problems == [
        "kafka: +75.5 MB/h",
        "trader: too few samples in the second half",
    ]
    assert memory_verdict({}, 50.0)[0] is False


def test_check_needs_every_value_known_and_equal() -> None:
    assert check("x", a=5, b=5)["ok"]
    assert not check("x", a=5, b=6)["ok"]
    assert not check("x", a=5, b=None)["ok"]
    assert check("x", a=5, b=6) == {"check": "x", "ok": False, "a": 5, "b": 6}


def test_flat_rows_and_nearest_sample() -> None:
    sample = {
        "elapsed_s": 60.0,
        "load_1m": 2.5,
        "rss": {"liquidity": {"rss_mb": 700.0, "by_comm_mb": {"java": 550.0}}},
        "lag": {"rtc-trader:liquidity.minute.v1": 0},
    }
    rows = flat_rows(sample)
    assert (60.0, "rss", "liquidity", "by_comm_mb.java", 550.0) in rows
    assert (60.0, "lag", "rtc-trader:liquidity.minute.v1", "value", 0) in rows
    assert nearest([{"elapsed_s": 0}, {"elapsed_s": 1790}, {"elapsed_s": 1850}], 1800) == {
        "elapsed_s": 1790
    }


def test_the_real_capture_changes_at_about_67_per_second() -> None:
    rate = capture_changes_per_s(GEMINI_CAPTURE)
    assert rate["changes"] == 2049
    assert rate["changes_per_s"] == pytest.approx(67.0, abs=0.05)


def test_bad_flags_exit_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--speed", "0"])
    assert exit_info.value.code == 2
    assert "--speed must be > 0" in capsys.readouterr().err


def test_steady_rss_leaves_out_a_fork_seen_in_one_sample_only() -> None:
    # the liquidity JVM (pid 5) forks a helper (pid 9) that shows the JVM's pages for a moment
    samples = [
        _sample(0, liquidity={5: 1000.0, 6: 160.0}),
        _sample(60, liquidity={5: 1010.0, 6: 160.0, 9: 1010.0}),
        _sample(120, liquidity={5: 1020.0, 6: 160.0}),
    ]
    assert [steady_rss_mb(samples, i, "liquidity") for i in range(3)] == [1160.0, 1170.0, 1180.0]
    assert steady_rss_mb(samples, 1, "kafka") is None
