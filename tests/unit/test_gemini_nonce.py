"""Gemini nonces persisted across restarts (issue 10: a clock stepped back after a restart made
every private call fail with InvalidNonce) and the live guard's parsed hosts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rtcrypto.exchange.endpoints import EndpointError, endpoint_host, is_live_gemini
from rtcrypto.exchange.nonce_store import NonceFileError, PersistentNonceSource

NOW_MS = 1_765_000_000_000


def test_a_restart_with_the_clock_stepped_back_continues_above_the_last_nonce(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nonce.txt"
    before = PersistentNonceSource(path, clock_ms=lambda: NOW_MS)
    sent = [before(), before(), before()]
    assert sent == [NOW_MS, NOW_MS + 1, NOW_MS + 2]
    before.close()
    after = PersistentNonceSource(path, clock_ms=lambda: NOW_MS - 3_600_000)  # an hour back
    assert after.last == NOW_MS + 2
    assert after() == NOW_MS + 3
    after.close()
    later = PersistentNonceSource(path, clock_ms=lambda: NOW_MS + 10_000)
    assert later() == NOW_MS + 10_000, "the clock wins once it is ahead again"


def test_two_sources_on_one_file_never_hand_out_the_same_nonce(tmp_path: Path) -> None:
    """The trader and a CLI call on the same key: the file (flock'd) orders them."""
    path = tmp_path / "nonce.txt"
    first = PersistentNonceSource(path, clock_ms=lambda: NOW_MS)
    second = PersistentNonceSource(path, clock_ms=lambda: NOW_MS)
    handed = [first(), second(), first(), second()]
    assert handed == sorted(set(handed)) == [NOW_MS + i for i in range(4)]


def test_threads_get_strictly_increasing_unique_nonces(tmp_path: Path) -> None:
    source = PersistentNonceSource(tmp_path / "nonce.txt", clock_ms=lambda: NOW_MS)
    results: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(50):
            nonce = source()
            with lock:
                results.append(nonce)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 400 and max(results) == NOW_MS + 399
    assert int((tmp_path / "nonce.txt").read_text()) == NOW_MS + 399


def test_a_corrupt_nonce_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nonce.txt"
    path.write_text("12ab\n")
    with pytest.raises(NonceFileError, match="corrupt"):
        PersistentNonceSource(path)


@pytest.mark.parametrize(
    ("url", "host", "live"),
    [
        ("https://api.gemini.com", "api.gemini.com", True),
        ("https://API.gemini.com:443", "api.gemini.com", True),
        ("https://api.gemini.com.:443/v1/", "api.gemini.com", True),
        ("https://user:pw@api.gemini.com", "api.gemini.com", True),
        ("http://api.gemini.com:8080", "api.gemini.com:8080", True),
        ("https://api.sandbox.gemini.com", "api.sandbox.gemini.com", False),
        ("https://api.gemini.com.evil.example", "api.gemini.com.evil.example", False),
        ("http://127.0.0.1:8765/", "127.0.0.1:8765", False),
        ("http://127.0.0.1:80", "127.0.0.1", False),
    ],
)
def test_hosts_are_compared_parsed(url: str, host: str, live: bool) -> None:
    assert endpoint_host(url) == host
    assert is_live_gemini(url) is live


@pytest.mark.parametrize("url", ["api.gemini.com", "https://", "http://h:70000"])
def test_a_url_without_a_host_or_with_a_bad_port_is_refused(url: str) -> None:
    with pytest.raises(EndpointError):
        endpoint_host(url)
