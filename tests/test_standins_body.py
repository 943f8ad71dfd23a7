"""The stand-in SMPL body and its files: a closed human-shaped mesh with SMPL's conventions, written
in the original file formats (chumpy / legacy scipy pickles) without chumpy being installed."""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import sys
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import cKDTree

from core.standins.body import (
    EXTRA_JOINT_NAMES,
    H36M_JOINT_NAMES,
    JOINT_NAMES,
    PARENTS,
    PART_NAMES,
    StandInBody,
    make_body,
)
from core.standins.smpl_files import (
    SMPL_ASSET_NAMES,
    mean_params,
    mesh_downsampling,
    write_smpl_assets,
    write_smpl_npz,
    write_smpl_pickle,
)

ARRAY_FIELDS = (
    "v_template",
    "faces",
    "joints",
    "parents",
    "lbs_weights",
    "shapedirs",
    "posedirs",
    "j_regressor_extra",
    "j_regressor_h36m",
    "part_labels",
)


@pytest.fixture(scope="module")
def body() -> StandInBody:
    return make_body(0)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], set[str], object]:
    """The folder written by write_smpl_assets, its return value, and sys.modules around the call."""
    folder = tmp_path_factory.mktemp("smpl") / "nested"
    csc_module = sys.modules.get("scipy.sparse.csc")
    before = set(sys.modules)
    paths = write_smpl_assets(folder, seed=0)
    return folder, paths, before, csc_module


def joint(name: str) -> int:
    return JOINT_NAMES.index(name)


def part_mask(body: StandInBody, name: str) -> np.ndarray:
    return body.part_labels == PART_NAMES.index(name)


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of each point w.r.t. a closed mesh: 1 inside, 0 outside
    (Van Oosterom-Strackee solid angles of all triangles)."""
    out = []
    for p in np.atleast_2d(points):
        a, b, c = (vertices[faces[:, k]] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        dots = (np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
                + np.einsum("ij,ij->i", c, a) * lb)
        out.append(np.arctan2(det, la * lb * lc + dots).sum() / (2.0 * np.pi))
    return np.array(out)


# --------------------------------------------------------------------------------------------
# The mesh


def test_sizes_and_dtypes(body: StandInBody) -> None:
    assert body.v_template.shape == (6890, 3) and body.v_template.dtype == np.float64
    assert body.faces.shape == (13776, 3) and body.faces.dtype == np.int64
    assert body.joints.shape == (24, 3)
    assert body.parents.dtype == np.int64 and body.parents.tolist() == list(PARENTS)
    assert PARENTS == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert len(JOINT_NAMES) == 24 and JOINT_NAMES[0] == "pelvis" and JOINT_NAMES[23] == "right_hand"
    assert body.lbs_weights.shape == (6890, 24)
    assert body.shapedirs.shape == (6890, 3, 10)
    assert body.posedirs.shape == (6890, 3, 207)
    assert isinstance(body.j_regressor, sp.csc_matrix) and body.j_regressor.shape == (24, 6890)
    assert body.j_regressor_extra.shape == (9, 6890) == (len(EXTRA_JOINT_NAMES), 6890)
    assert body.j_regressor_h36m.shape == (17, 6890) == (len(H36M_JOINT_NAMES), 6890)
    assert body.faces.min() == 0 and body.faces.max() == 6889
    assert not body.v_template.flags.writeable


def test_closed_manifold_genus_zero(body: StandInBody) -> None:
    f = body.faces
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # consistently oriented: no directed edge twice, and every edge's reverse is present
    assert len(np.unique(directed, axis=0)) == len(directed)
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert np.all(counts == 2)
    assert len(np.unique(f)) == 6890  # no unused vertex
    assert 6890 - len(undirected) + len(f) == 2  # Euler characteristic of a sphere
    n_parts, _ = sp.csgraph.connected_components(
        sp.coo_matrix((np.ones(len(directed)), directed.T), shape=(6890, 6890)), directed=False)
    assert n_parts == 1
    assert np.all(f[:, 0] != f[:, 1]) and np.all(f[:, 1] != f[:, 2]) and np.all(f[:, 2] != f[:, 0])


def test_outward_orientation(body: StandInBody) -> None:
    v, f = body.v_template, body.faces
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    assert 0.045 < volume < 0.11  # m^3: a 45-110 kg person
    normals = np.cross(b - a, c - a)
    centers = (a + b + c) / 3.0
    # the faces at the extremes of the body face away from it
    assert normals[np.argmax(centers[:, 1]), 1] > 0  # top of the head points up
    assert normals[np.argmin(centers[:, 1]), 1] < 0  # soles point down
    assert normals[np.argmax(centers[:, 0]), 0] > 0  # left fingertips point to +x
    assert normals[np.argmin(centers[:, 0]), 0] < 0


def test_person_proportions(body: StandInBody) -> None:
    v, j = body.v_template, body.joints
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.9
    assert body.part_labels[np.argmax(v[:, 1])] == PART_NAMES.index("head")  # head highest
    assert body.part_labels[np.argmin(v[:, 1])] in (PART_NAMES.index("left_leg"), PART_NAMES.index("right_leg"))
    assert abs(j[joint("pelvis"), 1] + 0.22) < 0.06 and np.abs(j[joint("pelvis"), [0, 2]]).max() < 0.05
    # +x is the person's left
    assert j[joint("left_hip"), 0] > 0.03 and j[joint("right_hip"), 0] < -0.03
    assert j[joint("left_wrist"), 0] > 0.5 and j[joint("right_wrist"), 0] < -0.5
    assert v[:, 0].max() > 0.75 and v[:, 0].min() < -0.75  # T-pose: arms out sideways
    assert abs(j[joint("left_wrist"), 1] - j[joint("left_shoulder"), 1]) < 0.1
    # legs apart a little, feet forward (+z), head above the neck above the pelvis
    assert j[joint("left_ankle"), 0] - j[joint("right_ankle"), 0] > 0.1
    for side in ("left", "right"):
        assert j[joint(f"{side}_foot"), 2] > j[joint(f"{side}_ankle"), 2] + 0.05
        assert j[joint(f"{side}_knee"), 1] > j[joint(f"{side}_ankle"), 1] + 0.3
    assert j[joint("head"), 1] > j[joint("neck"), 1] > j[joint("spine3"), 1] > j[joint("pelvis"), 1]
    # the nose side is the front: the head reaches further forward than back
    head = v[part_mask(body, "head")]
    assert head[:, 2].max() > -head[:, 2].min() + 0.02
    # left and right halves mirror each other
    gap, _ = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    assert np.median(gap) < 0.01 and gap.max() < 0.03


def test_joints_and_regressor_points_lie_inside(body: StandInBody) -> None:
    v, f = body.v_template, body.faces
    points = np.concatenate([body.joints, body.j_regressor_extra @ v, body.j_regressor_h36m @ v])
    assert np.allclose(winding_numbers(points, v, f), 1.0, atol=1e-6)
    outside = np.array([[0.0, -0.8, 0.0], [0.0, 0.0, 0.3], [0.5, -0.3, 0.0], [0.0, 0.7, 0.0], [0.4, 0.22, 0.0]])
    assert np.allclose(winding_numbers(outside, v, f), 0.0, atol=1e-6)
    # not merely inside, but well inside (at least 1.5 cm from the surface)
    depth = np.array([np.linalg.norm(v - p, axis=1).min() for p in body.joints])
    assert depth.min() > 0.015


# --------------------------------------------------------------------------------------------
# Skinning, blend shapes, regressors


def test_skinning_weights(body: StandInBody) -> None:
    w = body.lbs_weights
    assert w.min() >= 0.0 and np.allclose(w.sum(axis=1), 1.0)
    left_leg_joints = [joint(n) for n in ("left_hip", "left_knee", "left_ankle", "left_foot")]
    right_leg_joints = [joint(n) for n in ("right_hip", "right_knee", "right_ankle", "right_foot")]
    arm_joints = [i for i, n in enumerate(JOINT_NAMES) if n.split("_")[-1] in ("shoulder", "elbow", "wrist", "hand")]
    assert np.all(w[np.ix_(part_mask(body, "left_leg"), right_leg_joints)] == 0)
    assert np.all(w[np.ix_(part_mask(body, "right_leg"), left_leg_joints)] == 0)
    for arm in ("left_arm", "right_arm"):
        assert np.all(w[np.ix_(part_mask(body, arm), left_leg_joints + right_leg_joints)] == 0)
    for leg in ("left_leg", "right_leg"):
        assert np.all(w[np.ix_(part_mask(body, leg), arm_joints)] == 0)
    # every joint drives some vertex, and the dominant joint of the extremes makes sense
    dominant = np.argmax(w, axis=1)
    assert np.all(w.max(axis=0) > 0.3)
    assert dominant[np.argmax(body.v_template[:, 1])] == joint("head")
    assert dominant[np.argmax(body.v_template[:, 0])] == joint("left_hand")
    # blends are smooth: along any edge the weights change by less than 0.35
    f = body.faces
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert np.abs(w[edges[:, 0]] - w[edges[:, 1]]).max() < 0.35


def test_joint_regressor(body: StandInBody) -> None:
    reg = body.j_regressor
    assert reg.data.min() > 0 and np.allclose(np.asarray(reg.sum(axis=1)).ravel(), 1.0)
    assert np.abs(reg @ body.v_template - body.joints).max() < 0.01
    v = body.v_template
    rows = reg.tocsr()
    for row in range(24):
        cols = rows[row].indices
        assert 8 <= len(cols) <= 400, JOINT_NAMES[row]
        assert np.linalg.norm(v[cols] - body.joints[row], axis=1).max() < 0.3  # nearby vertices only
    for dense in (body.j_regressor_extra, body.j_regressor_h36m):
        assert dense.dtype == np.float64 and dense.min() >= 0 and np.allclose(dense.sum(axis=1), 1.0)
    h36m = body.j_regressor_h36m @ v
    named = dict(zip(H36M_JOINT_NAMES, h36m, strict=True))
    assert named["left_wrist"][0] > 0.5 and named["right_wrist"][0] < -0.5
    assert named["head"][1] > named["thorax"][1] > named["pelvis"][1] > named["left_knee"][1]
    extra = dict(zip(EXTRA_JOINT_NAMES, body.j_regressor_extra @ v, strict=True))
    assert extra["head_top_lsp"][1] > extra["head_h36m"][1] > extra["neck_lsp"][1]


def test_shape_directions(body: StandInBody) -> None:
    sd = body.shapedirs
    per_unit = np.linalg.norm(sd, axis=1).max(axis=0)
    assert np.all(per_unit > 0.004) and np.all(per_unit < 0.07)  # millimetres to a few cm per unit
    height = lambda betas: np.ptp((body.v_template + sd @ betas)[:, 1])  # noqa: E731
    unit = np.eye(10)
    assert height(unit[0]) > height(np.zeros(10)) + 0.02  # component 0: size
    assert 1.35 < height(-3 * unit[0]) and height(3 * unit[0]) < 2.1
    # component 1 (girth) pushes the belly forward and the thighs outward
    girth = sd[:, :, 1]
    front = np.argmax(body.v_template[:, 2] - 10 * np.abs(body.v_template[:, 1] + 0.1))
    assert girth[front, 2] > 0.005
    # smooth fields: neighbouring vertices move alike
    f = body.faces
    assert np.abs(sd[f[:, 0]] - sd[f[:, 1]]).max() < 0.01


def test_pose_directions_are_small_and_local(body: StandInBody) -> None:
    pd = body.posedirs
    assert 1e-4 < np.abs(pd).max() < 0.02
    left_knee_block = pd[:, :, 9 * (joint("left_knee") - 1):9 * joint("left_knee")]
    moved = np.abs(left_knee_block).max(axis=(1, 2)) > 0
    assert moved.any() and not moved[part_mask(body, "right_leg")].any() and not moved[part_mask(body, "head")].any()


def test_deterministic_for_a_seed() -> None:
    a, b, c = make_body(3), make_body(3), make_body(4)
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.j_regressor != b.j_regressor).nnz == 0
    assert np.array_equal(a.faces, c.faces) and np.array_equal(a.lbs_weights, c.lbs_weights)
    assert not np.array_equal(a.v_template, c.v_template) and not np.array_equal(a.posedirs, c.posedirs)


def test_poses_through_smplx(body: StandInBody) -> None:
    """The arrays drive smplx's linear blend skinning: a bent left knee moves the left foot up
    and back and leaves the right leg exactly where it was."""
    torch = pytest.importorskip("torch")
    smplx = pytest.importorskip("smplx")
    from smplx.lbs import batch_rodrigues
    from smplx.utils import Struct

    struct = Struct(v_template=body.v_template, f=body.faces, shapedirs=body.shapedirs, posedirs=body.posedirs,
                    J_regressor=body.j_regressor.toarray(), weights=body.lbs_weights,
                    kintree_table=np.stack([body.parents, np.arange(24)]))
    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.SMPLLayer(model_path="", data_struct=struct, num_betas=10).double()
    pose = torch.zeros(24, 3, dtype=torch.float64)
    pose[joint("left_knee")] = torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)
    rot = batch_rodrigues(pose).reshape(1, 24, 3, 3)
    out = layer(betas=torch.zeros(1, 10, dtype=torch.float64), global_orient=rot[:, :1], body_pose=rot[:, 1:])
    posed = out.vertices[0].numpy()
    rest = body.v_template
    assert np.isfinite(posed).all()
    right = part_mask(body, "right_leg")
    assert np.abs(posed[right] - rest[right]).max() < 1e-6  # smplx keeps its buffers in float32
    left_sole = part_mask(body, "left_leg") & (rest[:, 1] < rest[:, 1].min() + 0.02)
    assert posed[left_sole, 1].mean() > rest[left_sole, 1].mean() + 0.2
    assert posed[left_sole, 2].mean() < rest[left_sole, 2].mean() - 0.2


# --------------------------------------------------------------------------------------------
# Files


class _Placeholder:
    def __setstate__(self, state: dict) -> None:
        self.state = state


class _Ch(_Placeholder):
    pass


class _Csc(_Placeholder):
    pass


class _Coo(_Placeholder):
    pass


class _TinyRestrictedUnpickler(pickle.Unpickler):
    """Admits numpy reconstruction, set/bytes spellings and the legacy chumpy / scipy classes."""

    allowed: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): None,
        ("numpy", "ndarray"): None,
        ("numpy", "dtype"): None,
        ("_codecs", "encode"): None,
        ("__builtin__", "set"): set,
        ("chumpy.ch", "Ch"): _Ch,
        ("scipy.sparse.csc", "csc_matrix"): _Csc,
        ("scipy.sparse.coo", "coo_matrix"): _Coo,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused {module}.{name}")
        target = self.allowed[(module, name)]
        return target if target is not None else super().find_class(module, name)


def _globals(data: bytes) -> set[str]:
    return {str(arg) for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL")}


def _dense_from(state: dict) -> np.ndarray:
    return sp.csc_matrix((state["data"], state["indices"], state["indptr"]), shape=state["_shape"]).toarray()


def test_write_smpl_assets_writes_every_file(assets: tuple) -> None:
    folder, paths, before, csc_module = assets
    assert [p.name for p in paths] == list(SMPL_ASSET_NAMES)
    assert all(p.parent == folder and p.is_file() and p.stat().st_size > 0 for p in paths)
    assert sorted(p.name for p in folder.iterdir()) == sorted(SMPL_ASSET_NAMES)  # no temporary files left
    assert not any(m == "chumpy" or m.startswith("chumpy.") for m in sys.modules)
    assert before <= set(sys.modules)  # nothing that was loaded got dropped
    assert sys.modules.get("scipy.sparse.csc") is csc_module


def test_smpl_pickle_is_laid_out_like_the_original(assets: tuple, body: StandInBody) -> None:
    folder = assets[0]
    data = (folder / "SMPL_NEUTRAL.pkl").read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2
    names = _globals(data)
    assert "chumpy.ch Ch" in names and "scipy.sparse.csc csc_matrix" in names
    assert not any("_csc" in n or "standins" in n for n in names)
    model = _TinyRestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J"):
        assert isinstance(model[key], _Ch) and "_dirty_vars" in model[key].state, key
    assert np.array_equal(model["v_template"].state["x"], body.v_template)
    assert np.array_equal(model["shapedirs"].state["x"], body.shapedirs)
    assert model["posedirs"].state["x"].shape == (6890, 3, 207)
    assert isinstance(model["J_regressor"], _Csc)
    assert np.allclose(_dense_from(model["J_regressor"].state), body.j_regressor.toarray())
    assert model["f"].dtype == np.uint32 and np.array_equal(model["f"], body.faces)
    assert model["kintree_table"].shape == (2, 24)
    assert model["kintree_table"][0, 0] == 4294967295 and model["kintree_table"][0, 1:].tolist() == list(PARENTS[1:])
    assert model["kintree_table"][1].tolist() == list(range(24))
    assert model["bs_type"] == "lrotmin" and model["bs_style"] == "lbs"
    # the gendered files are variants of the same body: same faces, a different template
    male = _TinyRestrictedUnpickler(io.BytesIO((folder / "SMPL_MALE.pkl").read_bytes()), encoding="latin1").load()
    assert np.array_equal(male["f"], model["f"])
    male_height = np.ptp(male["v_template"].state["x"][:, 1])
    assert np.ptp(body.v_template[:, 1]) < male_height < 1.95


def test_small_asset_files(assets: tuple, body: StandInBody) -> None:
    folder = assets[0]
    extra = np.load(folder / "J_regressor_extra.npy", allow_pickle=False)
    h36m = np.load(folder / "J_regressor_h36m.npy", allow_pickle=False)
    assert extra.shape == (9, 6890) and h36m.shape == (17, 6890) and extra.dtype == h36m.dtype == np.float64
    assert np.array_equal(h36m, body.j_regressor_h36m)
    with np.load(folder / "smpl_mean_params.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["cam", "pose", "shape"]
        pose, shape, cam = npz["pose"], npz["shape"], npz["cam"]
    assert pose.shape == (144,) and shape.shape == (10,) and cam.tolist() == [0.9, 0.0, 0.0]
    blocks = pose.reshape(24, 3, 2)  # row-major 3x2: the first two columns of each rotation
    assert np.allclose(blocks[0], [[1, 0], [0, -1], [0, 0]])  # root: half turn about x
    assert np.allclose(np.einsum("jki,jkl->jil", blocks, blocks), np.eye(2)[None], atol=1e-9)
    assert np.all(blocks[1:, 0, 0] > 0.95) and np.all(blocks[1:, 1, 1] > 0.95)  # near identity
    assert np.array_equal(pose, mean_params(0)["pose"])


def test_mesh_downsampling_file(assets: tuple, body: StandInBody) -> None:
    path = assets[0] / "mesh_downsampling.npz"
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["A", "D", "U"]
        with pytest.raises(ValueError):
            npz["D"]  # object arrays: reading needs pickles, as with the real file
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    loaded, names = {}, {}
    for name, raw in members.items():
        stream = io.BytesIO(raw)
        if np.lib.format.read_magic(stream) != (1, 0):
            raise AssertionError(f"{name}: unexpected .npy version")
        np.lib.format.read_array_header_1_0(stream)
        payload = stream.read()
        names[name[:-4]] = _globals(payload)
        loaded[name[:-4]] = _TinyRestrictedUnpickler(io.BytesIO(payload), encoding="latin1").load()
    assert all(isinstance(m, _Csc) for m in loaded["D"]) and all(isinstance(m, _Coo) for m in loaded["A"])
    assert "scipy.sparse.csc csc_matrix" in names["D"] and "scipy.sparse.coo coo_matrix" in names["A"]
    d0, d1 = (_dense_from(m.state) for m in loaded["D"])
    assert d0.shape == (1723, 6890) and d1.shape == (431, 1723)
    assert np.all(d0.sum(axis=1) == 1) and np.all(d1.sum(axis=1) == 1)
    picked = np.argmax(d1 @ d0, axis=1)
    assert len(set(picked.tolist())) == 431
    # spread over the whole body: every part is sampled and the samples span the body
    assert set(body.part_labels[picked].tolist()) == set(range(len(PART_NAMES)))
    extent = np.ptp(body.v_template[picked], axis=0) / np.ptp(body.v_template, axis=0)
    assert np.all(extent > 0.9)
    matrices = mesh_downsampling(body, seed=0)
    assert [m.shape for m in matrices["U"]] == [(6890, 1723), (1723, 431)]
    assert all(np.all(np.asarray(u.sum(axis=1)).ravel() == 1) for u in matrices["U"])
    assert [m.shape for m in matrices["A"]] == [(6890, 6890), (1723, 1723), (431, 431)]
    assert all(abs(a - a.T).sum() == 0 for a in matrices["A"])


def test_sys_modules_restored_when_a_write_fails(tmp_path: Path, body: StandInBody) -> None:
    target = tmp_path / "SMPL_NEUTRAL.pkl"
    target.mkdir()  # replacing a folder by the finished file fails after the dump
    csc_module = sys.modules.get("scipy.sparse.csc")
    before = dict(sys.modules)
    with pytest.raises(OSError):
        write_smpl_pickle(target, body)
    assert not any(m == "chumpy" or m.startswith("chumpy.") for m in sys.modules)
    assert sys.modules.get("scipy.sparse.csc") is csc_module
    assert all(sys.modules.get(k) is module for k, module in before.items())
    assert list(tmp_path.iterdir()) == [target] and not any(target.iterdir())


def test_smpl_npz_variant(tmp_path: Path, body: StandInBody) -> None:
    path = write_smpl_npz(tmp_path / "SMPL_NEUTRAL.npz", body)
    with np.load(path, allow_pickle=False) as npz:
        assert np.array_equal(npz["v_template"], body.v_template)
        assert npz["J_regressor"].shape == (24, 6890) and np.allclose(npz["J_regressor"], body.j_regressor.toarray())
        assert npz["shapedirs"].shape == (6890, 3, 10) and npz["posedirs"].shape == (6890, 3, 207)
        assert npz["f"].dtype == np.uint32 and npz["kintree_table"][0, 0] == 4294967295
        assert str(npz["bs_type"]) == "lrotmin"
