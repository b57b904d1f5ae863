"""The order journal's crash windows (issue 10): a torn last line is cut off on open so the next
entry is not lost, the journal is locked, and it is named and checked by mode and host."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import (
    JournalError,
    JournalLockedError,
    JournalModeError,
    OrderJournal,
    SentOrder,
    journal_file_name,
    read_journal,
)
from rtcrypto.trader.service import TraderConfigError, trader_journal
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Side, StrategyParams
from tests.unit.test_trader_engine import T0, Book, ListRecorder, forecast_frame, record

TORN = b'{"type":"result","client_order_id":"rtc-v1-1618617660000-sel'


class Crash(BaseException):
    """Stands for kill -9 between the exchange's answer and the journal's ``result``."""


def sell_trader(tmp_path: Path, book: Book, *, crash: bool = False) -> Trader:
    """A paper trader holding 1 BTC whose forecast says sell: the top of the book holds less
    than that, so a sell fills partly and a second send of the same order would sell again."""

    def crash_after_send(status: OrderStatus) -> None:
        raise Crash

    exchange = PaperExchange(
        tmp_path / "paper.json", book, usd=Decimal(0), btc=Decimal(1), clock_ms=lambda: T0
    )
    forecasts = ForecastSource(tmp_path / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(["sell", "sell"]))
    trader = Trader(
        exchange=exchange,
        journal=OrderJournal(tmp_path / "journal.jsonl"),
        forecasts=forecasts,
        recorder=ListRecorder(),
        params=StrategyParams(),
        limits=RiskLimits(Decimal("2"), Decimal("1000000"), Decimal("1000"), 5),
        symbol="BTCUSD",
        mode="paper",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: T0,
        after_send=crash_after_send if crash else None,
    )
    trader.start()
    return trader


def test_a_sent_entry_after_a_torn_line_survives_and_the_order_is_not_sent_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case end to end on the paper exchange: a crash left a torn line; the restarted
    trader journals ``sent`` and is killed before ``result`` (its record not committed); the next
    restart must find the order pending, reconcile it and not send it again."""
    book = Book()
    book.size = Decimal("0.4")
    first = sell_trader(tmp_path, book)
    first.journal.close()
    journal_path = tmp_path / "journal.jsonl"
    with journal_path.open("ab") as handle:  # the crash mid-write of some entry
        handle.write(TORN)

    with caplog.at_level(logging.WARNING):
        second = sell_trader(tmp_path, book, crash=True)
    assert f"{len(TORN)} bytes dropped" in caplog.text
    with pytest.raises(Crash):
        second.on_liquidity(parse_liquidity(record(1)))
    second.journal.close()
    assert len(read_journal(journal_path).pending()) == 1, "the sent entry is on its own line"

    third = sell_trader(tmp_path, book)
    state = third.journal.state
    assert state.pending() == [] and len(state.results) == 1
    again = third.on_liquidity(parse_liquidity(record(1)))  # the uncommitted record, re-read
    assert again.action == "skip" and "already sent" in again.reason
    paper = third.exchange
    assert isinstance(paper, PaperExchange)
    assert len(paper._orders) == 1, "the exchange saw the order once"
    assert paper.balances()["btc"] == Decimal("0.6")
    third.journal.close()
    lines = journal_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.startswith(b'{"type":') for line in lines[:-1])


def test_a_torn_line_is_cut_back_and_the_next_entry_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OrderJournal(path)
    journal.open_account(Decimal(100), Decimal(0), "paper", T0)
    request = OrderRequest("rtc-v1-1-buy", "btcusd", Side.buy, Decimal("0.1"), Decimal("60010"))
    journal.record_sent(SentOrder(request, "v1", T0, T0))
    journal.close()
    complete = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(TORN)
    assert read_journal(path).pending()[0].request == request  # readers skip the torn tail

    reopened = OrderJournal(path)
    assert path.stat().st_size == complete
    reopened.record_abandoned("rtc-v1-1-buy", "test")
    reopened.close()
    state = read_journal(path)
    assert state.abandoned == {"rtc-v1-1-buy": "test"} and state.pending() == []
    assert state.opened is not None and state.opened["mode"] == "paper"


def test_a_failed_write_is_cut_back_so_the_next_entry_is_whole(tmp_path: Path) -> None:
    """Disk full in the middle of a line: the file goes back to its last complete line."""
    path = tmp_path / "journal.jsonl"
    journal = OrderJournal(path)
    journal.open_account(Decimal(100), Decimal(0), "paper", T0)
    size = path.stat().st_size
    import os

    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    os.write = half_then_full  # type: ignore[assignment]
    try:
        with pytest.raises(OSError, match="No space"):
            journal.record_abandoned("a", "first")
    finally:
        os.write = real_write  # type: ignore[assignment]
    assert path.stat().st_size == size and "a" not in journal.state.abandoned
    journal.record_abandoned("b", "second")
    journal.close()
    assert read_journal(path).abandoned == {"b": "second"}


def test_a_corrupt_line_before_the_last_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"type":"opened","usd":"1","btc":"0","mode":"paper","ts_ms":1}\n{oops\n{}\n')
    with pytest.raises(JournalError, match="line 2 is corrupt"):
        OrderJournal(path)


def test_a_second_trader_on_the_same_journal_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from rtcrypto.trader.journal import OrderJournal
                journal = OrderJournal({str(path)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(JournalLockedError, match="already running"):
            OrderJournal(path)
    finally:
        holder.communicate("", timeout=10)
    OrderJournal(path).close()  # released when its holder exits


def test_one_process_cannot_open_it_twice_either(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "journal.jsonl")
    with pytest.raises(JournalLockedError):
        OrderJournal(tmp_path / "journal.jsonl")
    journal.close()
    OrderJournal(tmp_path / "journal.jsonl").close()


def test_journals_are_named_by_mode_and_host() -> None:
    assert journal_file_name("paper", None) == "journal-paper.jsonl"
    assert (
        journal_file_name("sandbox", "https://api.sandbox.gemini.com")
        == "journal-sandbox-api.sandbox.gemini.com.jsonl"
    )
    assert (
        journal_file_name("live", "https://API.gemini.com:443/")
        == "journal-live-api.gemini.com.jsonl"
    )
    assert (
        journal_file_name("sandbox", "http://127.0.0.1:8765")
        == "journal-sandbox-127.0.0.1_8765.jsonl"
    )


def settings_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    for name in ("RTC_TRADING_MODE", "RTC_GEMINI_REST_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_sandbox_and_live_never_share_a_journal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sandbox = trader_journal(settings_for(monkeypatch, tmp_path, RTC_TRADING_MODE="sandbox"))
    live = trader_journal(settings_for(monkeypatch, tmp_path, RTC_TRADING_MODE="live"))
    paper = trader_journal(settings_for(monkeypatch, tmp_path))
    assert len({sandbox.path, live.path, paper.path}) == 3
    sandbox.open_account(Decimal(1), Decimal(0), "sandbox", T0)
    assert read_journal(sandbox.path).opened == {
        "type": "opened",
        "usd": "1",
        "btc": "0",
        "mode": "sandbox",
        "ts_ms": T0,
        "venue": "api.sandbox.gemini.com",
    }
    for journal in (sandbox, live, paper):
        journal.close()


def test_a_journal_of_another_mode_or_host_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OrderJournal(path, mode="sandbox", venue="127.0.0.1:8765")
    journal.open_account(Decimal(1), Decimal(0), "sandbox", T0)
    journal.close()
    with pytest.raises(JournalModeError, match="belongs to a sandbox trader, not live"):
        OrderJournal(path, mode="live", venue="api.gemini.com")
    with pytest.raises(JournalModeError, match="exchange 127.0.0.1:8765, not api.gemini.com"):
        OrderJournal(path, mode="sandbox", venue="api.gemini.com")
    OrderJournal(path, mode="sandbox", venue="127.0.0.1:8765").close()


def test_a_journal_of_an_earlier_version_is_read_by_its_mode(tmp_path: Path) -> None:
    """Before issue 10 ``opened`` had no venue: it still opens (its mode is checked)."""
    path = tmp_path / "journal-paper.jsonl"
    path.write_text('{"type":"opened","usd":"5","btc":"0","mode":"paper","ts_ms":1}\n')
    journal = OrderJournal(path, mode="paper")
    assert journal.state.opened is not None and journal.state.opened["usd"] == "5"
    journal.close()
    with pytest.raises(JournalModeError):
        OrderJournal(path, mode="sandbox", venue="api.sandbox.gemini.com")


def test_the_shared_gemini_journal_of_an_earlier_version_must_be_moved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = settings_for(monkeypatch, tmp_path, RTC_TRADING_MODE="sandbox")
    legacy = settings.trader_dir / "journal-gemini.jsonl"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('{"type":"opened","usd":"5","btc":"0","mode":"live","ts_ms":1}\n')
    with pytest.raises(TraderConfigError) as caught:
        trader_journal(settings)
    message = str(caught.value)
    assert "mode live" in message and "journal-sandbox-api.sandbox.gemini.com.jsonl" in message
    legacy.rename(settings.trader_dir / "journal-live-api.gemini.com.jsonl")  # what it says to do
    trader_journal(settings).close()


def test_a_line_an_earlier_version_appended_onto_a_torn_one_keeps_its_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the bug left behind: ``<torn>{"type":"sent",...}`` in the middle of the file. The
    ``sent`` entry is recovered, so the order is pending and reconciled, not sent again."""
    path = tmp_path / "journal.jsonl"
    journal = OrderJournal(path)
    journal.open_account(Decimal(100), Decimal(0), "paper", T0)
    request = OrderRequest("rtc-v1-1-buy", "btcusd", Side.buy, Decimal("0.1"), Decimal("60010"))
    journal.record_sent(SentOrder(request, "v1", T0, T0))
    journal.close()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(
        lines[0] + TORN + lines[1] + b'{"type":"abandoned","client_order_id":"x","reason":"r"}\n'
    )
    with caplog.at_level(logging.WARNING):
        state = read_journal(path)
    assert [sent.request for sent in state.pending()] == [request]
    assert state.abandoned == {"x": "r"}
    assert f"torn entry of {len(TORN)} characters" in caplog.text
