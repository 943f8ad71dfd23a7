"""Fuzzing both motion-file readers and the add-on's planner with a seeded mutation loop.

Valid small files (tests/motion_samples.py, stored and deflated) are mutated at the byte level
(bit flips, overwrites, cuts, zip size fields, .npy header shapes) and structurally (keys dropped
or added, wrong dtypes and shapes, NaN/infinite/absurd values, broken frame orders, meta entries
of the wrong type or range, pickled objects, zip bombs and headers declaring more than their
data). Each case goes through the engine's reader and the add-on as the extension ships it (its
vendored reader, then plan_import): never an exception but MotionFormatError / AddonError, every
message one line, no pickled object ever built, and memory within the bound of
docs/motion-format.md ("Limits"), measured as the resident set's peak (tracemalloc off Linux).
``STAF_FUZZ_CASES`` sets the count, ``STAF_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import traceback
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from motion_samples import npz_bytes, sample_arrays, shipped_addon

from core.motion_format import FORMAT_VERSION, MotionFormatError, read_motion
from core.motion_schema import MAX_FILE_BYTES, MAX_RATIO

CASES = int(os.environ.get("STAF_FUZZ_CASES", "5000"))
SEED = int(os.environ.get("STAF_FUZZ_SEED", "20261202"))
SLACK = 1 << 16  # what a deflated member may declare beyond MAX_RATIO x its compressed size
FIXED = 16 << 20  # interpreter, zip and plan overhead on top of the arrays
UNREAD = 4 << 20  # an attack file refused before anything is inflated stays within this
ATTACKS = ("bomb", "bomb_rows", "lying_header", "lying_frames")
EXECUTED: list[str] = []


def _ran() -> None:
    EXECUTED.append("a pickled object was built")


class Payload:
    """Pickled into an object array: unpickling it would record that a file ran code."""

    def __reduce__(self):
        return (_ran, ())


SPECIALS_F = (np.nan, np.inf, -np.inf, 1e30, -1e30, 1e7, -1.0, 0.0, 3.4e38)
SPECIALS_I = (-1, 0, 1, 2**31 - 1, 2**31, 10**6, 2**63 - 1, -(2**63), 48574 + 10**6)
META_VALUES = (None, 0, -1, 1, 0.5, 1e30, -1e30, float("nan"), float("inf"), "30", "", "x\x00y", [], {}, True,
               10**30, 2**31, 65537, "a" * 5000, [1, 2], {"fps_num": 30})
DTYPES = (np.int8, np.uint8, np.int32, np.uint64, np.float16, np.float64, np.bool_, np.complex64, "U3", "S4")


def bomb_bytes(arrays: dict, key: str, shape: tuple[int, ...]) -> bytes:
    """``arrays`` with ``key`` replaced by zeros of ``shape``, deflated (a member that inflates
    to far more than its compressed size)."""
    return npz_bytes({**arrays, key: np.zeros(shape, arrays[key].dtype)}, compressed=True)


def lying_header(arrays: dict, key: str, declared: int) -> bytes:
    """An .npz whose member ``key`` declares ``declared`` elements but holds only a few."""
    data = npz_bytes(arrays)
    head = np.lib.format.header_data_from_array_1_0(np.zeros(4, np.float32))
    head["shape"] = (declared,)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, head)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = buffer.getvalue() + b"\0" * 16 if info.filename == f"{key}.npy" else src.read(info)
            dst.writestr(info.filename, body)
    return out.getvalue()


def mutate_bytes(rng: np.random.Generator, data: bytes) -> tuple[str, bytes]:
    b = bytearray(data)
    op = int(rng.integers(7))
    if op == 1:
        at = int(rng.integers(len(b)))
        b[at:at + 16] = rng.integers(0, 256, min(16, len(b) - at), dtype=np.uint8).tobytes()
        return f"overwrite at {at}", bytes(b)
    if op == 2:
        at = int(rng.integers(len(b)))
        return f"cut at {at}", bytes(b[:at])
    if op == 3:
        at = int(rng.integers(len(b)))
        return f"insert at {at}", bytes(b[:at] + rng.bytes(int(rng.integers(1, 64))) + b[at:])
    heads = [i for sig in (b"PK\x01\x02", b"PK\x03\x04", b"PK\x05\x06") for i in _find_all(b, sig)]
    marks = _find_all(b, b"'shape': (")
    if (op == 4 and not heads) or (op == 5 and not marks):
        op = 0
    if op == 0:
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        return "bit flips", bytes(b)
    if op == 4:  # a size or offset field of a zip header
        at = heads[int(rng.integers(len(heads)))] + int(rng.choice([8, 10, 12, 16, 18, 20, 22, 24, 42]))
        value = int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 10**9, int(rng.integers(2**32))]))
        b[at:at + 4] = value.to_bytes(4, "little")
        return f"zip field at {at} = {value}", bytes(b)
    if op == 5:  # a shape in an .npy header, same length (the layout stays)
        at = marks[int(rng.integers(len(marks)))] + 10
        end = b.index(b")", at)
        digits = [i for i in range(at, end) if chr(b[i]).isdigit()]
        if digits:
            for i in digits:
                b[i] = ord(str(int(rng.integers(10))) if rng.random() < 0.5 else "9")
        return f"npy shape at {at}", bytes(b)
    at = int(rng.integers(len(b)))
    return f"delete at {at}", bytes(b[:at] + b[at + int(rng.integers(1, 256)):])


def _find_all(data: bytes | bytearray, sig: bytes) -> list[int]:
    found, at = [], data.find(sig)
    while at >= 0:
        found.append(at)
        at = data.find(sig, at + 1)
    return found


def _special(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    a = a.copy()
    if a.size == 0 or a.dtype.kind not in "iuf":
        return a
    flat = a.reshape(-1)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(flat.size))
        pool = SPECIALS_F if a.dtype.kind == "f" else SPECIALS_I
        value = pool[int(rng.integers(len(pool)))]
        if a.dtype.kind != "f" and not np.iinfo(a.dtype).min <= value <= np.iinfo(a.dtype).max:
            a = a.astype(np.uint64 if value > 2**63 - 1 else np.int64)
            flat = a.reshape(-1)
        flat[i] = value
    return a


def mutate_arrays(rng: np.random.Generator, arrays: dict) -> tuple[str, dict]:
    arrays = dict(arrays)
    keys = sorted(arrays)
    key = keys[int(rng.integers(len(keys)))]
    a = arrays[key]
    op = int(rng.integers(10))
    if op == 0:
        del arrays[key]
        return f"drop {key}", arrays
    if op == 1:
        extra = str(rng.choice(["person_9/pose", "person_0/extra", "unknown", "person_ids2"]))
        arrays[extra] = rng.normal(size=(3, 24, 3)).astype(np.float32)
        return f"extra {extra}", arrays
    if op == 2:
        dtype = DTYPES[int(rng.integers(len(DTYPES)))]
        try:
            with np.errstate(all="ignore"):
                arrays[key] = a.astype(dtype)
        except (ValueError, TypeError):
            arrays[key] = np.array("text")
        return f"{key} as {np.dtype(dtype)}", arrays
    if op == 3:
        shapes = [a.reshape(-1), a[None], a.reshape(-1)[:0], a.T, np.array(a.reshape(-1)[0]) if a.size else a,
                  np.concatenate([a, a]) if a.ndim else a, a[..., :1] if a.ndim else a]
        arrays[key] = shapes[int(rng.integers(len(shapes)))]
        return f"{key} reshaped to {arrays[key].shape}", arrays
    if op in (4, 5):
        arrays[key] = _special(rng, a)
        return f"{key} special values", arrays
    if op == 6:  # frame orders
        fkey = str(rng.choice([k for k in keys if k.endswith(("frame", "frame_index"))]))
        f = arrays[fkey].copy()
        choice = int(rng.integers(4))
        f = (f[::-1], np.sort(np.r_[f[:-1], f[0]]), f - 100, f + 10**6)[choice]
        arrays[fkey] = f
        return f"{fkey} reordered ({choice})", arrays
    if op == 7:
        return mutate_meta(rng, arrays)
    if op == 8:
        target = str(rng.choice(["version", "person_ids", "format", key]))
        values = [np.array("1"), np.array(1.0), np.array(2), np.array(0), np.array([1]), np.array(True),
                  np.array(FORMAT_VERSION + 1), np.array([0, 0]), np.array([0, 10**7]), np.array([-1]),
                  np.array([0, 1, 5]), np.array(2**62, np.int64)]
        arrays[target] = values[int(rng.integers(len(values)))]
        return f"{target} = {arrays[target]!r}", arrays
    arrays[key] = np.array([Payload(), 1], dtype=object)
    return f"{key} pickled", arrays


def mutate(rng: np.random.Generator, arrays: dict) -> tuple[str, dict]:
    """One structural mutation; a mutation that does not apply to an already mutated array
    (a frame reorder of text, say) is drawn again."""
    while True:
        try:
            return mutate_arrays(rng, arrays)
        except (ValueError, TypeError, IndexError, OverflowError, KeyError, AttributeError, RecursionError):
            continue


def mutate_meta(rng: np.random.Generator, arrays: dict) -> tuple[str, dict]:
    meta = json.loads(str(arrays["meta"]))
    choice = int(rng.integers(8))
    if choice == 0:
        text = str(rng.choice(["[]", "1", '"x"', "{", "[" * 100_000 + "]" * 100_000, "1" * 5000, "null"]))
        return f"meta text {text[:20]!r}", {**arrays, "meta": np.array(text)}
    paths = [(k,) for k in meta] + [(k, j) for k, v in meta.items() if isinstance(v, dict) for j in v]
    path = paths[int(rng.integers(len(paths)))]
    holder = meta
    for part in path[:-1]:
        holder = holder[part]
    if choice == 1:
        del holder[path[-1]]
        return f"meta drop {'.'.join(path)}", {**arrays, "meta": np.array(json.dumps(meta))}
    value = META_VALUES[int(rng.integers(len(META_VALUES)))]
    holder[path[-1]] = value
    return f"meta {'.'.join(path)} = {value!r:.30}", {**arrays, "meta": np.array(json.dumps(meta))}


class PeakMemory:
    """Peak memory of a block: the resident set's high-water mark, reset before each case
    (Linux: /proc/self/clear_refs), else tracemalloc's peak (slower: Python-level allocations)."""

    def __init__(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.kind = "resident set (VmHWM)"
        except OSError:
            self.kind = "tracemalloc"
            tracemalloc.start()

    @staticmethod
    def _status(field: str) -> int:
        return 1024 * int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))

    def start(self) -> None:
        if self.kind == "tracemalloc":
            tracemalloc.reset_peak()
            self.before = tracemalloc.get_traced_memory()[0]
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.before = self._status("VmRSS")

    def peak(self) -> int:
        """Bytes above the level at :meth:`start`."""
        if self.kind == "tracemalloc":
            return tracemalloc.get_traced_memory()[1] - self.before
        return self._status("VmHWM") - self.before

    def stop(self) -> None:
        if self.kind == "tracemalloc":
            tracemalloc.stop()


def allowed_bytes(data: bytes) -> int:
    """The array data a reader may hold for this file by the stated bound (zip directory)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            total = sum(i.compress_size if i.compress_type == zipfile.ZIP_STORED
                        else min(i.file_size, MAX_RATIO * i.compress_size + SLACK) for i in z.infolist())
    except Exception:  # not a zip at all: nothing is inflated
        total = len(data)
    return min(MAX_FILE_BYTES, total)


def check_plan(plan, plan_module) -> None:
    """What Blender's setters and ID properties accept (they clamp or overflow outside it)."""
    s = plan.scene
    assert 0 <= s.frame_start <= s.frame_end <= plan_module.BLENDER_MAX_FRAME
    assert 1 <= s.fps <= 32767 and 1e-5 <= s.fps_base <= 1e6
    assert s.width is None or (4 <= s.width <= 65536 and 4 <= s.height <= 65536)
    assert plan.camera is None or plan.camera.lens_mm >= 1.0
    for rig in plan.rigs:
        assert 0 <= rig.person_id < 2**31 and rig.rotations.shape[1:] == (24, 4)
        for a in (rig.bone_heads, rig.bone_tails, rig.vertices, rig.rotations, rig.root_location, rig.frames):
            assert np.isfinite(a).all()
        lengths = np.linalg.norm(rig.bone_tails.astype(np.float32) - rig.bone_heads.astype(np.float32), axis=1)
        assert (lengths > 0).all()  # Blender deletes zero-length bones
        assert (rig.weights >= 0).all() and (rig.weights <= 1).all()
        assert len(set(rig.bone_names)) == 24 and all(0 < len(n.encode()) <= 63 for n in rig.bone_names)


def run_case(path: Path, addon, options) -> str:
    """Both readers and the planner on ``path`` (a warning counts as a failure: it would be noise
    on the user's stderr); returns 'ok' or 'refused'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return _run_case(path, addon, options)


def _run_case(path: Path, addon, options) -> str:
    motion_io, plan_module, people = addon
    try:
        read_motion(path)
        engine = "ok"
    except MotionFormatError as err:
        assert "\n" not in str(err) and str(path) in str(err), str(err)
        engine = "refused"
    try:
        motion = motion_io.load_motion(path)
    except motion_io.AddonError as err:  # the shipped add-on's own error type
        assert "\n" not in str(err)
        assert engine == "refused", "the add-on refused what the engine read"
        return "refused"
    assert engine == "ok", "the add-on read what the engine refused"
    people.summarise_people(motion)
    try:
        check_plan(plan_module.plan_import(motion, options), plan_module)
    except plan_module.AddonError as err:
        assert "\n" not in str(err)
    return "ok"


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """(motion_io, plan, people) of the add-on as the extension zip ships it."""
    return shipped_addon(tmp_path_factory.mktemp("shipped"))


def test_fuzzed_motion_files_never_crash_either_reader_nor_the_planner(addon, tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    base = sample_arrays()
    seeds = {"stored": npz_bytes(base), "deflated": npz_bytes(base, compressed=True),
             "bomb": bomb_bytes(base, "skin_weights", (100_000, 24)),  # shapes a motion file allows:
             "bomb_rows": bomb_bytes(base, "frame_index", (1_000_000,)),  # only the ratio check stops them
             "lying_header": lying_header(base, "person_0/pose", 10**12),
             "lying_frames": lying_header(base, "frame_index", 2**40)}
    plan_module = addon[1]
    modes = [plan_module.ImportOptions(root_motion=m, shape_keys=k) for m in (*plan_module.ROOT_MOTION_MODES, "auto")
             for k in (False, True)]
    outcomes = {"ok": 0, "refused": 0}
    failures, slowest = [], (0.0, "")
    memory = PeakMemory()
    started = time.perf_counter()
    try:
        for case in range(CASES):
            kind = int(rng.integers(10))
            if kind < 6:
                label, arrays = mutate(rng, base)
                if rng.random() < 0.3:
                    more, arrays = mutate(rng, arrays)
                    label += f" + {more}"
                data = npz_bytes(arrays, compressed=bool(rng.random() < 0.3))
            else:
                name = str(rng.choice(sorted(seeds)))
                label, data = mutate_bytes(rng, seeds[name]) if kind < 9 else ("as is", seeds[name])
                label = f"{name}: {label}"
            path = tmp_path / f"case{case % 8}.npz"
            path.write_bytes(data)
            options = modes[int(rng.integers(len(modes)))]
            memory.start()
            t0 = time.perf_counter()
            try:
                outcomes[run_case(path, addon, options)] += 1
            except Exception:  # collected and reported below
                failures.append(f"case {case} ({label}): {traceback.format_exc(limit=-3)}")
            took = time.perf_counter() - t0
            peak = memory.peak()
            # The stated bound: the data read plus its copies in the documented dtypes (at most 8
            # bytes per element), plus overhead; an unmutated attack file must inflate nothing.
            limit = allowed_bytes(data) + min(MAX_FILE_BYTES, 8 * allowed_bytes(data)) + FIXED
            if label.endswith(": as is") and label.split(":")[0] in ATTACKS:
                limit = UNREAD
            if peak > limit:
                failures.append(f"case {case} ({label}): peak {peak} bytes > bound {limit}")
            slowest = max(slowest, (took, f"case {case} ({label})"))
    finally:
        memory.stop()
    elapsed = time.perf_counter() - started
    line = (f"motion fuzz: {CASES} cases in {elapsed:.1f} s ({outcomes['ok']} read, {outcomes['refused']} "
            f"refused), peak memory by {memory.kind} within bound; slowest {slowest[0] * 1000:.1f} ms: {slowest[1]}")
    with capsys.disabled():  # in CI logs even with pytest's capture on
        print(f"\n{line}", flush=True)
    assert not EXECUTED, EXECUTED
    assert not failures, f"{len(failures)} failures; first:\n" + "\n".join(failures[:3])
    assert outcomes["ok"] > CASES // 50 and outcomes["refused"] > CASES // 2  # the mutations bite, not all
