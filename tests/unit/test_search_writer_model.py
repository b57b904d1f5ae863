"""The search writer's spool lines read back: what was spooled comes back equal, anything else
is reported per line, never raised (hostile or torn spool files)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.search.writer_model import QueuedDoc, doc_spool_line, read_spool_lines

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.text(min_size=1, max_size=40),
            st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5),
        ),
        max_size=10,
    )
)
def test_spooled_documents_read_back_equal_and_in_order(
    docs: list[tuple[str, str, dict[str, object]]],
) -> None:
    queued = [QueuedDoc(index, doc_id, orjson.dumps(source)) for index, doc_id, source in docs]
    lines = b"".join(doc_spool_line(doc) for doc in queued).split(b"\n")
    read = [item for _, item, _ in read_spool_lines(lines)]
    assert all(isinstance(item, QueuedDoc) for item in read)
    assert [(d.index_name, d.doc_id, orjson.loads(d.body)) for d in read] == [  # type: ignore[union-attr]
        (index, doc_id, source) for index, doc_id, source in docs
    ]


@given(st.lists(st.binary(max_size=60), max_size=10))
def test_any_bytes_give_one_result_per_non_empty_line_and_never_raise(lines: list[bytes]) -> None:
    results = list(read_spool_lines(lines))
    assert [number for number, _, _ in results] == [
        number for number, line in enumerate(lines, start=1) if line.strip()
    ]
    for _, item, raw in results:
        assert isinstance(item, QueuedDoc | Exception)
        assert raw == lines[_ - 1]


def test_a_torn_line_is_reported_with_its_number() -> None:
    good = doc_spool_line(QueuedDoc("rtc-orders", "a", b'{"x":1}')).rstrip(b"\n")
    results = list(read_spool_lines([good, b'{"_index": "rtc-orders", "_id"', b""]))
    assert isinstance(results[0][1], QueuedDoc) and results[0][0] == 1
    assert isinstance(results[1][1], Exception) and results[1][0] == 2
    assert len(results) == 2
