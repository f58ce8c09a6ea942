"""`BookGaps`, a decoder's gaps by book (`Decoder.gapped_books`): the first `NAMED` books to
have a gap are counted exactly, any other is not kept, so a stream of ever new instruments cannot
grow it without bound."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine.venue import BookGaps


class _Three(BookGaps):
    __slots__ = ()
    NAMED = 3


@given(st.lists(st.sampled_from("abcdefg"), max_size=40))
def test_the_first_books_to_gap_are_counted_exactly_and_no_other_is_kept(books: list[str]) -> None:
    gaps = _Three()
    for book in books:
        gaps.add(book)
    first = list(dict.fromkeys(books))[:3]
    assert dict(gaps) == {b: n for b, n in Counter(books).items() if b in first}
    assert list(gaps) == first  # in the order they first gapped


def test_the_bundled_bound() -> None:
    gaps = BookGaps()
    for i in range(10_000):
        gaps.add(str(i))
    assert len(gaps) == BookGaps.NAMED == 100 and gaps["99"] == 1 and "100" not in gaps
