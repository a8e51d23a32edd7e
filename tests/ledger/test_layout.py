"""The tlog-tiles paths and the entry-bundle codec (hub.ledger.layout)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ledger.layout import (
    MAX_TILE_INDEX,
    TilePath,
    decode_bundle,
    encode_bundle,
    format_index,
    parse_tile_path,
    split_tile_key,
    tile_key,
    tile_path,
)


def test_the_specs_example_index() -> None:
    # C2SP tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
    assert format_index(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(None, 2, 5) == "tile/entries/002.p/5"
    assert format_index(0) == "000"
    assert format_index(1000) == "x001/000"


@given(
    st.one_of(st.none(), st.integers(0, 7)),
    st.integers(0, MAX_TILE_INDEX),
    st.one_of(st.none(), st.integers(1, 255)),
)
def test_paths_round_trip(level: int | None, index: int, width: int | None) -> None:
    path = tile_path(level, index, width)
    assert parse_tile_path(path.removeprefix("tile/")) == TilePath(level, index, width)


@pytest.mark.parametrize(
    "path",
    ["00/000", "0/x000/000", "0/x000/x001/000", "entries/x000/123", "8/000", "0/000.p/00", "0"],
)
def test_only_canonical_paths_parse(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


def test_index_bound_is_the_tile_keys() -> None:
    assert split_tile_key(tile_key(7, MAX_TILE_INDEX)) == (7, MAX_TILE_INDEX)
    with pytest.raises(ValueError):
        tile_key(0, MAX_TILE_INDEX + 1)
    with pytest.raises(ValueError):
        parse_tile_path("0/" + format_index(MAX_TILE_INDEX + 1))


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundles_round_trip(entries: list[bytes]) -> None:
    data = encode_bundle(entries)
    assert decode_bundle(data) == entries
    assert len(data) == sum(2 + len(e) for e in entries)


def test_bundle_codec_refuses_what_it_cannot_say() -> None:
    assert encode_bundle([b"ab"]) == b"\x00\x02ab"
    with pytest.raises(ValueError):
        encode_bundle([bytes(0x10000)])
    with pytest.raises(ValueError, match="inside an entry"):
        decode_bundle(b"\x00\x05ab")
    with pytest.raises(ValueError, match="length prefix"):
        decode_bundle(b"\x00\x01a\x00")
