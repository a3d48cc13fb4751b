"""The log codec's fast decoding of JSON number and id lists against the general JSON parser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bandits.log_codec import decode_id_lists, decode_number_lists, encode_list

# ---------------------------------------------------------------------------------------------------------
# The codec's fast decoding against the general JSON parser


def test_decode_number_lists_matches_json_reference() -> None:
    rng = np.random.default_rng(8)
    int_rows = [rng.integers(-(2**62), 2**62, size=k) for k in rng.integers(0, 9, size=200)]
    float_rows = [
        rng.normal(scale=10.0 ** rng.integers(-300, 300), size=k) for k in rng.integers(0, 9, size=200)
    ]
    float_rows.append(np.array([5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2]))
    for rows, dtype in ((int_rows, np.int64), (float_rows, np.float64)):
        texts = [json.dumps(r.tolist(), separators=(",", ":")) for r in rows]
        decoded = decode_number_lists(texts, dtype)
        reference = [np.asarray(json.loads(t), dtype=dtype) for t in texts]
        assert len(decoded) == len(reference)
        for got, want in zip(decoded, reference, strict=True):
            assert got.dtype == dtype
            assert got.tobytes() == want.tobytes()


# Texts another tool may have written: spaces, floats in an int column, JSON5 tokens. The general parser reads
# them (or refuses them) exactly as json.loads does.
@pytest.mark.parametrize(
    ("texts", "dtype", "expected"),
    [
        (["[1, 2]", "[3]"], np.int64, [[1, 2], [3]]),
        (["[ ]", "[4]"], np.int64, [[], [4]]),
        (["[1.5,2]"], np.float64, [[1.5, 2.0]]),
        (["[NaN,1]"], np.float64, [[np.nan, 1.0]]),
        (["[1,-2]", "[]", "[30]"], np.int64, [[1, -2], [], [30]]),
    ],
)
def test_decode_number_lists_falls_back_on_foreign_text(texts, dtype, expected) -> None:
    decoded = decode_number_lists(texts, dtype)
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected, strict=True):
        np.testing.assert_array_equal(got, np.asarray(want, dtype=dtype))


def test_decode_id_lists_keeps_each_rows_id_type() -> None:
    texts = ['["a","b"]', "[1,2]", "[]", '["x"]', "[-7]"]
    decoded = decode_id_lists(texts)
    assert [d.tolist() for d in decoded] == [["a", "b"], [1, 2], [], ["x"], [-7]]
    assert [d.dtype.kind for d in decoded] == ["O", "i", "i", "O", "i"]


@pytest.mark.parametrize("ids", [["\x00"], ["a\x00", "a"], ["\x00\x00", "\x00b", "c\x00"]])
def test_decode_id_lists_keeps_nul_characters(ids) -> None:
    decoded = decode_id_lists([encode_list(np.array(ids, dtype=object))])
    assert decoded[0].tolist() == ids
