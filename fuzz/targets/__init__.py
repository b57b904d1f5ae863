"""Fuzz targets: each module defines ``test_one_input(data: bytes) -> None`` (must never raise)
and ``seed_corpus() -> list[bytes]`` (inputs built from the real captures in ../shared/data)."""
