"""Named bad motion files (issue 12, classes 1 and 2), shared by the engine-side and the add-on's
bad-input tests (tests/test_bad_motion_files.py, tests/blender/in_blender/test_bpy_bad_motion.py).

``BAD_FILES[name] = (build, words)``: ``build(marker)`` returns the bytes of a file that every
reader must refuse, and the refusal's one line must contain ``words`` (the field it names).
``marker`` is a path a pickled payload would create if a reader ever unpickled it.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from motion_samples import npz_bytes, sample_arrays, with_meta


class _Touch:
    """Pickled into an object array: unpickling it would create ``path`` (code from the file ran)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _arrays(**changes) -> dict[str, np.ndarray]:
    arrays = sample_arrays()
    arrays.update({k.replace("__", "/"): v for k, v in changes.items()})
    return arrays


def _changed(**changes) -> Callable[[Path], bytes]:
    return lambda marker: npz_bytes(_arrays(**changes))


def _meta(**changes) -> Callable[[Path], bytes]:
    return lambda marker: npz_bytes(with_meta(sample_arrays(), **changes))


def _person(pid: int, name: str, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], bytes]:
    def build(marker: Path) -> bytes:
        arrays = sample_arrays()
        key = f"person_{pid}/{name}"
        arrays[key] = edit(arrays[key].copy())
        return npz_bytes(arrays)
    return build


def _set(index, value):
    def edit(a: np.ndarray) -> np.ndarray:
        a[index] = value
        return a
    return edit


def bomb(key: str, shape: tuple[int, ...]) -> Callable[[Path], bytes]:
    """A deflated member of zeros of a shape the format allows, far above 100x its compressed size."""
    return lambda marker: npz_bytes({**sample_arrays(), key: np.zeros(shape, sample_arrays()[key].dtype)},
                                    compressed=True)


def declared_size(key: str, size: int) -> Callable[[Path], bytes]:
    """A stored file whose zip directory declares ``size`` bytes for member ``key`` (data unchanged)."""
    def build(marker: Path) -> bytes:
        data = bytearray(npz_bytes(sample_arrays(), compressed=True))
        name = f"{key}.npy".encode()
        for sig, offset, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
            at = data.find(sig)
            while at >= 0:
                if data[at + name_at:at + name_at + len(name)] == name:
                    data[at + offset:at + offset + 4] = struct.pack("<I", size)
                at = data.find(sig, at + 1)
        return bytes(data)
    return build


def lying_header(key: str, shape: tuple[int, ...]) -> Callable[[Path], bytes]:
    """Member ``key`` with a .npy header declaring ``shape`` and 16 bytes of data."""
    def build(marker: Path) -> bytes:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(npz_bytes(sample_arrays()))) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                body = head.getvalue() + bytes(16) if info.filename == f"{key}.npy" else src.read(info)
                dst.writestr(info.filename, body)
        return out.getvalue()
    return build


def pickled(key: str) -> Callable[[Path], bytes]:
    return lambda marker: npz_bytes(_arrays(**{key: np.array([_Touch(marker)], dtype=object)}))


def too_many_members(marker: Path) -> bytes:
    data = bytearray(npz_bytes(sample_arrays()))
    at = data.rfind(b"PK\x05\x06")
    data[at + 8:at + 12] = struct.pack("<HH", 0xFFFF, 0xFFFF)
    return bytes(data)


def directory_size_lie(marker: Path) -> bytes:
    data = bytearray(npz_bytes(sample_arrays()))
    at = data.rfind(b"PK\x05\x06")
    data[at + 12:at + 16] = struct.pack("<I", 0x7FFFFFFF)
    return bytes(data)


BAD_FILES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    # class 1: meta entries of the wrong type or range
    "fps_zero": (_meta(source__fps_num=0), "source.fps_num"),
    "fps_huge_float": (_meta(source__fps_num=1e30), "source.fps_num"),
    "fps_text": (_meta(source__fps_num="30"), "source.fps_num"),
    "fps_den_negative": (_meta(source__fps_den=-1001), "source.fps_den"),
    "fps_rate_absurd": (_meta(source__fps_num=1_000_000, source__fps_den=1), "fps"),
    "fps_missing": (_meta(source={"width": 640, "height": 360}), "source.fps_num"),
    "source_not_object": (_meta(source=[30000, 1001]), "source"),
    "width_text": (_meta(source__width="640"), "source.width"),
    "height_huge": (_meta(source__height=10**9), "source.height"),
    "width_bool": (_meta(source__width=True), "source.width"),
    "focal_nan": (_meta(camera__focal_length_px=float("nan")), "camera.focal_length_px"),
    "focal_zero": (_meta(camera__focal_length_px=0), "camera.focal_length_px"),
    "focal_text": (_meta(camera__focal_length_px="wide"), "camera.focal_length_px"),
    "frame_count_negative": (_meta(source__frame_count=-1), "source.frame_count"),
    "range_reversed": (_meta(range={"start": 9, "end": 2}), "range.start"),
    "clip_path_nul": (_meta(source__path="/tmp/clip\x00.mp4"), "source.path"),
    "name_not_text": (_meta(source__name=["clip"]), "source.name"),
    "people_found_negative": (_meta(people_found=-3), "people_found"),
    "meta_not_object": (_changed(meta=np.array("[1, 2]")), "meta"),
    "meta_deep": (_changed(meta=np.array("[" * 200_000 + "]" * 200_000)), "meta"),
    "meta_not_json": (_changed(meta=np.array("{'source': 1}")), "meta"),
    "meta_not_text": (_changed(meta=np.zeros(3)), "meta"),
    # class 1: version, arrays' types, shapes, frame numbers, values
    "version_text": (_changed(version=np.array("1")), "version"),
    "version_float": (_changed(version=np.array(1.5)), "version"),
    "version_vector": (_changed(version=np.array([1, 1])), "version"),
    "version_zero": (_changed(version=np.array(0)), "version"),
    "version_newer": (_changed(version=np.array(7)), "update the add-on"),
    "frames_negative": (_changed(frame_index=np.arange(-5, 7)), "frame_index"),
    "frames_huge": (_changed(frame_index=np.arange(12) + 10**7), "frame_index"),
    "frames_not_monotonic": (_changed(frame_index=np.arange(12)[::-1].copy()), "frame_index"),
    "frames_float": (_changed(frame_index=np.arange(12, dtype=np.float64)), "frame_index"),
    "person_frame_unlisted": (_person(0, "frame", _set(-1, 40)), "frame_index"),
    "person_frames_repeated": (_person(1, "frame", _set(1, 3)), "strictly increasing"),
    "pose_nan": (_person(0, "pose", _set((2, 3, 1), np.nan)), "person_0/pose"),
    "pose_absurd": (_person(0, "pose", _set((2, 3, 1), 1e30)), "person_0/pose"),
    "translation_inf": (_person(1, "translation", _set((0, 2), np.inf)), "person_1/translation"),
    "pose_complex": (_person(0, "pose", lambda a: a.astype(np.complex64)), "person_0/pose"),
    "betas_wrong_shape": (_person(1, "betas", lambda a: a[:, :9].copy()), "person_1/betas"),
    "flags_out_of_byte": (_person(0, "flags", lambda a: a.astype(np.int64) + 300), "person_0/flags"),
    "score_above_one": (_person(1, "score", _set(0, 3.0)), "person_1/score"),
    "contacts_two": (_person(1, "contacts", _set((0, 1), 2)), "person_1/contacts"),
    "contacts_wrong_shape": (_person(1, "contacts", lambda a: a[:, :3].copy()), "person_1/contacts"),
    "world_translation_nan": (_person(1, "world_translation", _set((1, 0), np.nan)), "person_1/world_translation"),
    "reprojection_negative": (_person(1, "reprojection_px", _set(0, -3.0)), "person_1/reprojection_px"),
    "pose_locked_absurd": (_person(1, "pose_locked", _set((0, 4, 2), 1e9)), "person_1/pose_locked"),
    "camera_to_world_scaled": (_changed(camera_to_world=np.tile(np.diag([2.0, 2, 2, 1]), (12, 1, 1))),
                               "camera_to_world"),
    "camera_to_world_shear": (_changed(camera_to_world=np.tile(np.array([[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                                                          [0, 0, 0, 1]]), (12, 1, 1))),
                              "camera_to_world"),
    "camera_to_world_mirror": (_changed(camera_to_world=np.tile(np.diag([1.0, 1, -1, 1]), (12, 1, 1))),
                               "camera_to_world"),
    "camera_to_world_frames": (_changed(camera_to_world=np.tile(np.eye(4), (5, 1, 1))), "camera_to_world"),
    "world_pitch_absurd": (lambda marker: npz_bytes(with_meta(sample_arrays(), world__camera_pitch_deg=400)),
                           "world.camera_pitch_deg"),
    "weights_above_one": (_changed(skin_weights=np.full((30, 24), 2.0, np.float32)), "skin_weights"),
    "faces_degenerate": (_changed(faces=np.zeros((20, 3), np.int32)), "faces"),
    "joint_names_repeated": (_changed(joint_names=np.array(["j"] * 24)), "joint_names"),
    "person_ids_repeated": (_changed(person_ids=np.array([0, 0])), "person_ids"),
    "person_id_huge": (_changed(person_ids=np.array([0, 2**40])), "person_ids"),
    "person_id_negative": (_changed(person_ids=np.array([-1])), "person_ids"),
    "person_missing_key": (lambda marker: npz_bytes({k: v for k, v in sample_arrays().items()
                                                     if k != "person_1/rest_joints"}), "person_1/rest_joints"),
    "pickled_marker": (pickled("format"), "Python objects"),
    "pickled_pose": (pickled("person_0/pose"), "person_0/pose"),
    # class 2: sizes declared beyond what the format or the data allow
    "zip_bomb_weights": (bomb("skin_weights", (100_000, 24)), "zip bomb"),
    "zip_bomb_frames": (bomb("frame_index", (1_000_000,)), "zip bomb"),
    "declared_4gb_member": (declared_size("person_0/pose", 0xFFFFFFF0), "person_0/pose"),
    "header_declares_1e12": (lying_header("person_0/pose", (10**12, 24, 3)), "person_0/pose"),
    "header_declares_more_rows": (lying_header("frame_index", (2**40,)), "frame_index"),
    "header_more_than_data": (lying_header("shape_dirs", (30, 3, 10)), "shape_dirs"),
    "too_many_members": (too_many_members, "members"),
    "directory_size_lie": (directory_size_lie, "directory"),
}
