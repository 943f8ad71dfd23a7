"""The restricted unpickler: what it admits, what it refuses, and that refused files run nothing."""

from __future__ import annotations

import builtins
import copyreg
import os
import pickle
import re
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from core.errors import AssetInvalid, AssetMissing
from core.safe_pickle import load_npz_with_objects, load_pickle


def _one_line_about(err: pytest.ExceptionInfo[AssetInvalid], path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert path.name in text
    return text


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# Fake chumpy / old-scipy classes, injected into sys.modules only while a test pickles them.


def _fake_class(monkeypatch: pytest.MonkeyPatch, module: str, name: str, body: dict[str, Any] | None = None) -> type:
    mod = types.ModuleType(module)
    cls = type(name, (), dict(body or {}))
    cls.__module__ = module
    cls.__qualname__ = name
    setattr(mod, name, cls)
    parent = module.split(".")[0]
    if parent not in sys.modules:
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, module, mod)
    return cls


def _chumpy_ch(monkeypatch: pytest.MonkeyPatch, marker: Path | None = None) -> type:
    """A class pickled like ``chumpy.ch.Ch``; if its own code ran on loading it would write ``marker``."""

    def __setstate__(self: Any, state: dict[str, Any]) -> None:  # noqa: N807 - a method, defined here
        if marker is not None:
            marker.write_text("chumpy code ran")
        self.__dict__.update(state)

    return _fake_class(monkeypatch, "chumpy.ch", "Ch", {"__setstate__": __setstate__})


def _make_ch(cls: type, x: np.ndarray) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update({"x": x, "_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {}})
    return obj


# --------------------------------------------------------------------------------------------
# Refused globals


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return self.func, self.args


def _global_name(func: Any) -> str:
    return f"{func.__module__}.{func.__qualname__}"


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_os_system_is_refused_and_not_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", pickle.dumps(_Reduce(os.system, f"touch {marker}"), protocol=protocol))
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert _global_name(os.system) in _one_line_about(err, path)  # posix.system on Linux
    assert not marker.exists()


@pytest.mark.parametrize(
    ("func", "args_for"),
    [
        (builtins.eval, lambda m: (f"open({str(m)!r}, 'w').write('x')",)),
        (builtins.exec, lambda m: (f"open({str(m)!r}, 'w').write('x')",)),
        (subprocess.Popen, lambda m: (["touch", str(m)],)),
        (builtins.getattr, lambda m: (_Reduce(builtins.__import__, "os"), "system")),
        (builtins.__import__, lambda m: ("os",)),
        (np.load, lambda m: (str(m),)),
    ],
    ids=["eval", "exec", "subprocess", "getattr", "import", "numpy.load"],
)
def test_dangerous_globals_are_refused(tmp_path: Path, func: Any, args_for: Any) -> None:
    marker = tmp_path / "pwned"
    # protocol 4 keeps Python 3 module names (protocol 2 renames some, e.g. builtins -> __builtin__)
    path = _write(tmp_path / "evil.pkl", pickle.dumps(_Reduce(func, *args_for(marker)), protocol=4))
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert _global_name(func) in _one_line_about(err, path)
    assert not marker.exists()


def test_python2_module_names_are_named_as_python3_does(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.pkl", pickle.dumps(_Reduce(builtins.eval, "1"), protocol=2))
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "__builtin__.eval (i.e. builtins.eval)" in _one_line_about(err, path)


def test_malicious_object_inside_a_dict_of_arrays_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = {"v_template": np.zeros((3, 3)), "f": _Reduce(os.system, f"touch {marker}")}
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", pickle.dumps(payload, protocol=2))
    with pytest.raises(AssetInvalid, match=re.escape("system")):
        load_pickle(path)
    assert not marker.exists()


def test_reconstructor_with_a_disallowed_class_is_refused(tmp_path: Path) -> None:
    # Protocol 0, as Python 2 wrote it: copy_reg._reconstructor(collections.OrderedDict, object, None)
    data = b"ccopy_reg\n_reconstructor\n(ccollections\nOrderedDict\nc__builtin__\nobject\nNtR."
    path = _write(tmp_path / "evil.pkl", data)
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "collections.OrderedDict" in _one_line_about(err, path)


def test_reconstructor_with_an_admitted_non_placeholder_class_is_refused(tmp_path: Path) -> None:
    data = b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nobject\nNtR."
    path = _write(tmp_path / "evil.pkl", data)
    with pytest.raises(AssetInvalid, match=re.escape("copyreg._reconstructor of a class that is not admitted")):
        load_pickle(path)


def test_reconstructor_with_a_base_other_than_object_is_refused(tmp_path: Path) -> None:
    data = b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\ncnumpy\nndarray\nNtR."
    path = _write(tmp_path / "evil.pkl", data)
    with pytest.raises(AssetInvalid, match=re.escape("base other than object")):
        load_pickle(path)


def test_object_is_admitted_only_as_reconstructor_base(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.pkl", b"c__builtin__\nobject\n)R.")
    with pytest.raises(AssetInvalid, match=re.escape("builtins.object used outside copyreg._reconstructor")):
        load_pickle(path)


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.pkl", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(AssetInvalid, match=re.escape("_codecs.encode")):
        load_pickle(path)


def test_admitted_helpers_cannot_be_modified_by_a_file(tmp_path: Path) -> None:
    # BUILD applied to the admitted ``set``: would change a shared object if it were allowed.
    path = _write(tmp_path / "evil.pkl", b"\x80\x02c__builtin__\nset\n}X\x01\x00\x00\x00aK\x01sb.")
    with pytest.raises(AssetInvalid, match=re.escape("changing builtins.set")):
        load_pickle(path)


def test_extension_registry_goes_through_the_same_check(tmp_path: Path) -> None:
    code = 0xF3
    copyreg.add_extension("os", "system", code)
    try:
        path = _write(tmp_path / "evil.pkl", b"\x80\x02\x82" + bytes([code]) + b"X\x04\x00\x00\x00true\x85R.")
        with pytest.raises(AssetInvalid, match=re.escape("os.system")):
            load_pickle(path)
    finally:
        copyreg.remove_extension("os", "system", code)


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.pkl", b"Pabc\n.")
    with pytest.raises(AssetInvalid, match=re.escape("persistent id")):
        load_pickle(path)


# --------------------------------------------------------------------------------------------
# Damaged files


def test_truncated_pickle(tmp_path: Path) -> None:
    data = pickle.dumps({"a": np.arange(100.0), "b": np.ones((10, 3))}, protocol=2)
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", data[: len(data) // 2])
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "truncated" in _one_line_about(err, path)


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", b"")
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "empty" in _one_line_about(err, path)


def test_text_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", b"<html>Please log in to download SMPL</html>\n")
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "not a readable pickle" in _one_line_about(err, path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AssetMissing, match=re.escape("nothing.pkl")):
        load_pickle(tmp_path / "nothing.pkl")


def test_zip_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "mesh_downsampling.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not arrays")
    with pytest.raises(AssetInvalid) as err:
        load_npz_with_objects(path)
    _one_line_about(err, path)


def test_npz_member_that_is_not_npy(tmp_path: Path) -> None:
    path = tmp_path / "mesh_downsampling.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("D.npy", "this is not an array")
    with pytest.raises(AssetInvalid) as err:
        load_npz_with_objects(path)
    assert "D.npy" in _one_line_about(err, path)


def test_truncated_npz(tmp_path: Path) -> None:
    full = tmp_path / "full.npz"
    np.savez(full, D=np.array([sp.eye(5, format="csc")] * 2, dtype=object), x=np.arange(1000.0))
    path = _write(tmp_path / "mesh_downsampling.npz", full.read_bytes()[:-200])
    with pytest.raises(AssetInvalid) as err:
        load_npz_with_objects(path)
    _one_line_about(err, path)


def test_npz_with_a_damaged_member(tmp_path: Path) -> None:
    path = tmp_path / "smpl_mean_params.npz"
    np.savez(path, pose=np.arange(144.0))
    data = bytearray(path.read_bytes())
    start = data.index(b"\x93NUMPY") + 200  # inside the array data
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(AssetInvalid) as err:
        load_npz_with_objects(path)
    _one_line_about(err, path)


def test_not_a_zip_at_all(tmp_path: Path) -> None:
    path = _write(tmp_path / "mesh_downsampling.npz", b"hello")
    with pytest.raises(AssetInvalid, match=re.escape("not a valid .npz")):
        load_npz_with_objects(path)


# --------------------------------------------------------------------------------------------
# What is admitted, and what it becomes


@pytest.mark.parametrize("importable", [True, False], ids=["chumpy-importable", "no-chumpy"])
@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
def test_chumpy_objects_become_arrays_without_running_chumpy_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: int, importable: bool
) -> None:
    marker = tmp_path / "chumpy-ran"
    Ch = _chumpy_ch(monkeypatch, marker)
    shapedirs = np.random.default_rng(0).normal(size=(4, 3, 2))
    data = pickle.dumps({"shapedirs": _make_ch(Ch, shapedirs), "bs_type": "lrotmin"}, protocol=protocol)
    if not importable:
        monkeypatch.delitem(sys.modules, "chumpy.ch")  # as on a machine without chumpy
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", data)

    loaded = load_pickle(path)

    assert isinstance(loaded["shapedirs"], np.ndarray)
    np.testing.assert_array_equal(loaded["shapedirs"], shapedirs)
    assert loaded["bs_type"] == "lrotmin"
    assert not marker.exists()  # a plain pickle.load would have run Ch.__setstate__ (if importable)


def test_sparse_class_code_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "scipy-ran"

    def __setstate__(self: Any, state: dict[str, Any]) -> None:  # noqa: N807 - a method, defined here
        marker.write_text("scipy code ran")

    Fake = _fake_class(monkeypatch, "scipy.sparse.csc", "csc_matrix", {"__setstate__": __setstate__})
    m = sp.random(5, 4, density=0.5, format="csc", random_state=5)
    obj = Fake.__new__(Fake)
    obj.__dict__.update({"_shape": m.shape, "data": m.data, "indices": m.indices, "indptr": m.indptr, "maxprint": 50})
    data = pickle.dumps({"J_regressor": obj}, protocol=2)
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", data)

    loaded = load_pickle(path)["J_regressor"]  # the fake class is still importable here

    assert isinstance(loaded, sp.csc_matrix)
    np.testing.assert_array_equal(loaded.toarray(), m.toarray())
    assert not marker.exists()
    pickle.loads(data)  # control: an unrestricted load does run the class's code
    assert marker.exists()


def test_chumpy_object_without_x_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Sum = _fake_class(monkeypatch, "chumpy.ch_ops", "add")
    obj = Sum()
    obj.a, obj.b = 1.0, 2.0
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", pickle.dumps({"J": obj}, protocol=2))
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "chumpy.ch_ops.add holds no array under 'x'" in _one_line_about(err, path)


def _py2_float_array(a: np.ndarray) -> bytes:
    """Opcodes for a float64 array exactly as Python 2's cPickle (protocol 2) wrote them."""
    raw = np.ascontiguousarray(a, dtype="<f8").tobytes()
    shape = b"".join(b"K" + bytes([n]) for n in a.shape)
    rawstr = (b"U" + bytes([len(raw)])) if len(raw) < 256 else (b"T" + struct.pack("<I", len(raw)))
    dtype = b"cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01("
        + shape
        + b"t"
        + dtype
        + b"\x89"
        + rawstr
        + raw
        + b"tb"
    )


def test_python2_smpl_style_pickle(tmp_path: Path) -> None:
    """Python-2 str raw data (latin1), a chumpy Ch with its set of names, an old-scipy csc matrix."""
    v = np.arange(12.0).reshape(4, 3) / 7
    ch = (
        b"cchumpy.ch\nCh\n)\x81}(U\x01x"
        + _py2_float_array(v)
        + b"U\x0b_dirty_varsc__builtin__\nset\n]U\x01xa\x85RU\x04_itrNu"
        + b"b"
    )
    big = np.linspace(0, 1, 80).reshape(20, 4)  # > 255 bytes: BINSTRING
    data = b"\x80\x02}(U\nv_template" + ch + b"U\x07weights" + _py2_float_array(big) + b"U\x07bs_typeU\x07lrotminu."
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", data)

    loaded = load_pickle(path)

    np.testing.assert_array_equal(loaded["v_template"], v)
    np.testing.assert_array_equal(loaded["weights"], big)
    assert loaded["bs_type"] == "lrotmin"


@pytest.mark.parametrize("protocol", [0, 2])
def test_csc_from_the_old_scipy_module_name(tmp_path: Path, protocol: int) -> None:
    J = sp.random(24, 60, density=0.1, format="csc", random_state=1)
    data = pickle.dumps({"J_regressor": J}, protocol=protocol)
    old = data.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    assert old != data
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", old)

    loaded = load_pickle(path)["J_regressor"]

    assert isinstance(loaded, sp.csc_matrix)
    np.testing.assert_array_equal(loaded.toarray(), J.toarray())


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_other_sparse_layouts_become_csc(tmp_path: Path, layout: str) -> None:
    M = sp.random(7, 9, density=0.3, format=layout, random_state=2)
    path = _write(tmp_path / "m.pkl", pickle.dumps([M], protocol=4))
    (loaded,) = load_pickle(path)
    assert isinstance(loaded, sp.csc_matrix)
    np.testing.assert_array_equal(loaded.toarray(), M.toarray())


def test_malformed_sparse_matrix_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Fake = _fake_class(monkeypatch, "scipy.sparse.csc", "csc_matrix")
    bad = Fake()
    bad.__dict__.update(
        {"_shape": (3, 3), "data": np.ones(2), "indices": np.array([0, 7]), "indptr": np.array([0, 1, 2, 2])}
    )
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", pickle.dumps({"J_regressor": bad}, protocol=2))
    with pytest.raises(AssetInvalid) as err:
        load_pickle(path)
    assert "scipy.sparse.csc.csc_matrix" in _one_line_about(err, path)


def test_plain_python_values_and_numpy_scalars_pass_through(tmp_path: Path) -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": (np.float32(2.0), np.int64(3)), "c": np.arange(3, dtype=np.uint32)}
    path = _write(tmp_path / "p.pkl", pickle.dumps(value, protocol=2))
    loaded = load_pickle(path)
    assert loaded["a"] == value["a"]
    assert loaded["b"] == value["b"]
    assert loaded["c"].dtype == np.uint32


def test_npz_object_arrays_load_without_allow_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    D0 = sp.random(6, 10, density=0.3, format="csc", random_state=3)
    D1 = sp.random(3, 6, density=0.5, format="csc", random_state=4)
    path = tmp_path / "mesh_downsampling.npz"
    np.savez(path, D=np.array([D0, D1], dtype=object), U=np.array([D0.T, D1.T], dtype=object), plain=np.eye(2))

    real_load = np.load

    def guarded_load(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("allow_pickle"):
            raise AssertionError("np.load called with allow_pickle=True")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", guarded_load)
    monkeypatch.setattr(pickle, "load", None)
    monkeypatch.setattr(pickle, "loads", None)

    arrays = load_npz_with_objects(path)

    assert set(arrays) == {"D", "U", "plain"}
    assert arrays["D"].dtype == object and arrays["D"].shape == (2,)
    assert all(isinstance(m, sp.csc_matrix) for m in arrays["D"])
    np.testing.assert_array_equal((arrays["D"][1] @ arrays["D"][0]).toarray(), (D1 @ D0).toarray())
    np.testing.assert_array_equal(arrays["plain"], np.eye(2))


def test_npz_object_member_with_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "mesh_downsampling.npz"
    np.savez(path, D=np.array([_Reduce(os.system, f"touch {marker}"), None], dtype=object))
    with pytest.raises(AssetInvalid) as err:
        load_npz_with_objects(path)
    assert _global_name(os.system) in _one_line_about(err, path)
    assert not marker.exists()
