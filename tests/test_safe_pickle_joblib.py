"""``load_joblib``: joblib's file format read as plain data, and nothing from a file ever run."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from core.datasets import joblib_format
from core.datasets.joblib_format import write_joblib
from core.errors import AssetInvalid, AssetMissing
from core.safe_pickle import load_joblib


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return self.func, self.args


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


def _sample() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "joints3D": rng.normal(size=(5, 49, 3)).astype(np.float32),
        "pose": np.asfortranarray(rng.normal(size=(5, 72))),
        "vid_name": np.array(["courtyard_0", "courtyard_0", "downtown_1", "downtown_1", "downtown_1"]),
        "img_name": np.array([b"a.jpg", b"b.jpg", b"c.jpg", b"d.jpg", b"e.jpg"]),
        "frame_id": np.arange(5, dtype=">i8"),  # big-endian: comes back native
        "names": np.array(["a", 3, None, ("t", 1.5)], dtype=object),
        "empty": np.zeros((0, 3)),
        "scalar": np.array(7),
        "meta": {"fps": 30, "note": "x", "flags": [True, None, 2.5], "tags": {"a", "b"}},
    }


def _check_equal(loaded: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            got = loaded[key]
            assert isinstance(got, np.ndarray) and got.shape == value.shape and got.dtype.isnative, key
            if value.dtype.hasobject:
                assert got.tolist() == value.tolist(), key
            else:
                np.testing.assert_array_equal(got, value)
                assert got.dtype == value.dtype.newbyteorder("="), key
        else:
            assert loaded[key] == value, key


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_round_trip_of_every_array_kind(tmp_path: Path, protocol: int) -> None:
    data = _sample()
    loaded = load_joblib(write_joblib(data, tmp_path / "x_db.pt", protocol=protocol))
    _check_equal(loaded, data)
    assert loaded["pose"].flags.f_contiguous  # Fortran order survives, as with joblib


@pytest.mark.parametrize(
    "compress", [zlib.compress, gzip.compress, bz2.compress, lambda b: lzma.compress(b, format=lzma.FORMAT_XZ)],
    ids=["zlib", "gzip", "bz2", "xz"])
def test_compressed_files(tmp_path: Path, compress: Any) -> None:
    # joblib compresses the whole stream, padding computed on uncompressed positions, as here.
    raw = write_joblib(_sample(), tmp_path / "raw.pt").read_bytes()
    path = tmp_path / "x_db.pt"
    path.write_bytes(compress(raw))
    _check_equal(load_joblib(path), _sample())


def test_lz4_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "x_db.pt"
    path.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 20)
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    assert "lz4" in _one_line(err, path)


def test_files_from_joblib_itself(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    data = _sample()
    for compress in (0, 3):
        path = tmp_path / f"j{compress}.pt"
        joblib.dump(data, path, compress=compress)
        _check_equal(load_joblib(path), data)
    ours = write_joblib(data, tmp_path / "ours.pt")
    _check_equal(joblib.load(ours), data)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_in_the_pickle_is_refused_and_not_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    data = {"pose": np.zeros((2, 72)), "evil": _Reduce(os.system, f"touch {marker}")}
    path = write_joblib(data, tmp_path / "evil_db.pt", protocol=protocol)
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    text = _one_line(err, path)
    assert "refused" in text and "system" in text
    assert not marker.exists()


def test_code_inside_an_object_array_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    names = np.empty(2, dtype=object)
    names[:] = ["ok", _Reduce(os.system, f"touch {marker}")]
    path = write_joblib({"vid_name": names}, tmp_path / "evil_db.pt")
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    assert "system" in _one_line(err, path)
    assert not marker.exists()


def test_sparse_and_chumpy_classes_are_not_admitted_here(tmp_path: Path) -> None:
    path = write_joblib({"J": sp.csc_matrix(np.eye(3))}, tmp_path / "sparse_db.pt")
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    assert "scipy.sparse" in _one_line(err, path)


def _patched_record(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    original = joblib_format._ArrayRecord.__reduce_ex__

    def reduce_ex(self: Any, protocol: int) -> tuple:
        func, args, state = original(self, protocol)
        return func, args, {**state, **changes}

    monkeypatch.setattr(joblib_format._ArrayRecord, "__reduce_ex__", reduce_ex)


def test_array_record_of_another_class_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patched_record(monkeypatch, subclass=np.matrix)
    path = write_joblib({"a": np.zeros(3)}, tmp_path / "x_db.pt")
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    assert "numpy.matrix" in _one_line(err, path)


def test_array_claiming_more_bytes_than_the_file_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patched_record(monkeypatch, shape=(10**12,))
    path = write_joblib({"a": np.zeros(3)}, tmp_path / "x_db.pt")
    with pytest.raises(AssetInvalid) as err:
        load_joblib(path)
    assert "more bytes than the file holds" in _one_line(err, path)


def test_truncated_empty_and_missing_files(tmp_path: Path) -> None:
    raw = write_joblib(_sample(), tmp_path / "full.pt").read_bytes()
    for cut in (len(raw) // 3, len(raw) - 5):
        path = tmp_path / f"cut{cut}_db.pt"
        path.write_bytes(raw[:cut])
        with pytest.raises(AssetInvalid) as err:
            load_joblib(path)
        assert "truncated or damaged" in _one_line(err, path)
    empty = tmp_path / "empty_db.pt"
    empty.write_bytes(b"")
    with pytest.raises(AssetInvalid) as err:
        load_joblib(empty)
    assert "empty" in _one_line(err, empty)
    with pytest.raises(AssetMissing):
        load_joblib(tmp_path / "nowhere_db.pt")
    text = tmp_path / "text_db.pt"
    text.write_text("not a pickle at all\n")
    with pytest.raises(AssetInvalid):
        load_joblib(text)
