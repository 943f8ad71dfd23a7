"""SMPL loading (original-format pickle through the safe unpickler, or npz) and the smplx body model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import AssetInvalid, AssetMissing, BadInput
from core.smpl import (
    SMPL_JOINT_NAMES,
    BodyModel,
    SmplData,
    load_body_model,
    load_downsampling,
    load_joint_regressor,
    load_mean_params,
    load_smpl_data,
)

V, F, J = 6890, 13776, 24
_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@pytest.fixture(scope="module")
def smpl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in SMPL files in the original formats (chumpy pickle, sparse J_regressor, npz, npy)."""
    smpl_files = pytest.importorskip("core.standins.smpl_files")
    folder = tmp_path_factory.mktemp("smpl")
    smpl_files.write_smpl_assets(folder, seed=0)
    return folder


@pytest.fixture(scope="module")
def smpl_data(smpl_folder: Path) -> SmplData:
    return load_smpl_data(smpl_folder / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def body(smpl_data: SmplData) -> BodyModel:
    return BodyModel(smpl_data).eval()


def _save_as_npz(data: SmplData, path: Path) -> Path:
    """The same model with the pickle's key names, as plain arrays."""
    kintree = np.stack([data.parents, np.arange(J)])
    np.savez(
        path,
        v_template=data.v_template,
        f=data.faces.astype(np.uint32),
        shapedirs=data.shapedirs,
        posedirs=data.posedirs,
        J_regressor=data.j_regressor,
        weights=data.lbs_weights,
        kintree_table=kintree,
    )
    return path


# --------------------------------------------------------------------------------------------
# Loading and validation (no stand-ins needed: arrays of the right shapes, all zeros)


def _valid_arrays() -> dict[str, np.ndarray]:
    return {
        "v_template": np.zeros((V, 3), np.float32),
        "f": np.zeros((F, 3), np.uint32),
        "shapedirs": np.zeros((V, 3, 10), np.float32),
        "posedirs": np.zeros((V, 3, 207), np.float32),
        "J_regressor": np.zeros((J, V), np.float32),
        "weights": np.zeros((V, J), np.float32),
        "kintree_table": np.stack([np.where(np.array(_PARENTS) < 0, 2**32 - 1, _PARENTS), np.arange(J)]),
    }


def test_valid_shapes_load(tmp_path: Path) -> None:
    arrays = _valid_arrays()
    arrays["shapedirs"] = np.zeros((V, 3, 300), np.float32)  # SMPL+H style: more components, first 10 kept
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    data = load_smpl_data(tmp_path / "SMPL_NEUTRAL.npz")
    assert data.shapedirs.shape == (V, 3, 10)
    assert data.faces.dtype == np.int64 and data.v_template.dtype == np.float32
    assert data.parents.tolist() == _PARENTS
    assert data.joint_names == SMPL_JOINT_NAMES and len(SMPL_JOINT_NAMES) == J


@pytest.mark.parametrize(
    ("key", "bad", "expected"),
    [
        ("v_template", np.zeros((100, 3)), "(6890, 3)"),
        ("f", np.zeros((F, 4), np.int64), "(13776, 3)"),
        ("shapedirs", np.zeros((V, 3, 5)), "(6890, 3, >=10)"),
        ("posedirs", np.zeros((V, 3, 200)), "(6890, 3, 207)"),
        ("J_regressor", np.zeros((J, 100)), "(24, 6890)"),
        ("weights", np.zeros((V, 23)), "(6890, 24)"),
        ("kintree_table", np.zeros((2, 23), np.int64), "(2, 24)"),
    ],
)
@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_wrong_shape_names_the_key(tmp_path: Path, key: str, bad: np.ndarray, expected: str, suffix: str) -> None:
    import pickle

    arrays = _valid_arrays()
    arrays[key] = bad
    path = tmp_path / f"SMPL_NEUTRAL{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(AssetInvalid) as err:
        load_smpl_data(path)
    text = str(err.value)
    assert "\n" not in text and path.name in text
    assert f"'{key}' has shape {bad.shape}, expected {expected}" in text


def test_missing_key(tmp_path: Path) -> None:
    arrays = _valid_arrays()
    del arrays["weights"]
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(AssetInvalid, match="'weights'"):
        load_smpl_data(tmp_path / "SMPL_NEUTRAL.npz")


@pytest.mark.parametrize(
    ("key", "bad", "message"),
    [
        ("f", np.full((F, 3), V, np.int64), "vertex indices"),
        ("v_template", np.full((V, 3), np.nan, np.float32), "NaN"),
        ("kintree_table", np.stack([np.arange(-1, J - 1)[::-1], np.arange(J)]), "joint tree"),
        ("f", np.zeros((F, 3), np.float32), "not numbers"),
    ],
)
def test_bad_values(tmp_path: Path, key: str, bad: np.ndarray, message: str) -> None:
    arrays = _valid_arrays()
    arrays[key] = bad
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(AssetInvalid, match=message):
        load_smpl_data(tmp_path / "SMPL_NEUTRAL.npz")


def test_posedirs_in_smplx_layout_is_accepted(tmp_path: Path) -> None:
    arrays = _valid_arrays()
    posedirs = np.random.default_rng(0).normal(size=(V, 3, 207)).astype(np.float32)
    arrays["posedirs"] = posedirs.reshape(V * 3, 207).T.copy()  # (207, 20670), as smplx holds it
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    np.testing.assert_array_equal(load_smpl_data(tmp_path / "SMPL_NEUTRAL.npz").posedirs, posedirs)


def test_object_arrays_in_npz_are_refused(tmp_path: Path) -> None:
    arrays = _valid_arrays()
    arrays["bs_type"] = np.array([{"a": 1}], dtype=object)
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    with pytest.raises(AssetInvalid, match="plain arrays"):
        load_smpl_data(tmp_path / "SMPL_NEUTRAL.npz")


def test_unknown_suffix_and_non_dict_pickle(tmp_path: Path) -> None:
    import pickle

    (tmp_path / "SMPL_NEUTRAL.txt").write_text("x")
    with pytest.raises(AssetInvalid, match=r"\.pkl"):
        load_smpl_data(tmp_path / "SMPL_NEUTRAL.txt")
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(AssetInvalid, match="not the dict"):
        load_smpl_data(tmp_path / "SMPL_NEUTRAL.pkl")


# --------------------------------------------------------------------------------------------
# Small asset files


def test_mean_params(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", pose=np.arange(144.0), shape=np.ones(10), cam=np.array([0.9, 0.0, 0.1]))
    mean = load_mean_params(tmp_path / "m.npz")
    assert mean.pose.shape == (144,) and mean.shape.shape == (10,) and mean.cam.shape == (3,)
    assert mean.pose.dtype == np.float32
    np.savez(tmp_path / "bad.npz", pose=np.arange(72.0), shape=np.ones(10), cam=np.zeros(3))
    with pytest.raises(AssetInvalid, match=r"'pose' has shape \(72,\), expected \(144,\)"):
        load_mean_params(tmp_path / "bad.npz")
    np.savez(tmp_path / "nocam.npz", pose=np.arange(144.0), shape=np.ones(10))
    with pytest.raises(AssetInvalid, match="'cam' is missing"):
        load_mean_params(tmp_path / "nocam.npz")
    with pytest.raises(AssetMissing):
        load_mean_params(tmp_path / "absent.npz")


def test_joint_regressor(tmp_path: Path) -> None:
    np.save(tmp_path / "J_regressor_h36m.npy", np.full((17, V), 1.0 / V))
    reg = load_joint_regressor(tmp_path / "J_regressor_h36m.npy", 17)
    assert reg.shape == (17, V) and reg.dtype == np.float32
    with pytest.raises(AssetInvalid, match=r"\(17, 6890\), expected \(9, 6890\)"):
        load_joint_regressor(tmp_path / "J_regressor_h36m.npy", 9)
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    with pytest.raises(AssetInvalid, match=r"obj\.npy"):
        load_joint_regressor(tmp_path / "obj.npy", 17)


def test_downsampling_shapes_are_checked(tmp_path: Path) -> None:
    import scipy.sparse as sp

    wrong = np.array([sp.eye(1723, V, format="csc"), sp.eye(400, 1723, format="csc")], dtype=object)
    np.savez(tmp_path / "mesh_downsampling.npz", D=wrong)
    with pytest.raises(AssetInvalid, match=r"'D\[1\]' has shape \(400, 1723\), expected \(431, 1723\)"):
        load_downsampling(tmp_path / "mesh_downsampling.npz")
    np.savez(tmp_path / "no_d.npz", A=wrong)
    with pytest.raises(AssetInvalid, match="'D' is missing"):
        load_downsampling(tmp_path / "no_d.npz")


# --------------------------------------------------------------------------------------------
# Stand-in files in the original formats


def test_standin_pickle_is_in_the_original_format(smpl_folder: Path) -> None:
    raw = (smpl_folder / "SMPL_NEUTRAL.pkl").read_bytes()
    assert b"chumpy.ch" in raw and b"csc_matrix" in raw  # so the chumpy and sparse paths are exercised


def test_standin_small_files(smpl_folder: Path) -> None:
    mean = load_mean_params(smpl_folder / "smpl_mean_params.npz")
    assert mean.pose.shape == (144,)
    dmap = load_downsampling(smpl_folder / "mesh_downsampling.npz")
    assert dmap.shape == (431, V) and dmap.dtype == np.float32
    assert load_joint_regressor(smpl_folder / "J_regressor_h36m.npy", 17).shape == (17, V)
    assert load_joint_regressor(smpl_folder / "J_regressor_extra.npy", 9).shape == (9, V)


def test_zero_pose_gives_the_template(body: BodyModel, smpl_data: SmplData) -> None:
    rotmats = torch.eye(3).expand(2, J, 3, 3).clone()
    with torch.no_grad():
        out = body(torch.zeros(2, 10), rotmats)
    assert out.vertices.shape == (2, V, 3) and out.joints.shape == (2, J, 3)
    template = torch.from_numpy(smpl_data.v_template)
    torch.testing.assert_close(out.vertices[1], template, atol=1e-6, rtol=0)
    expected_joints = torch.from_numpy(smpl_data.j_regressor.astype(np.float64) @ smpl_data.v_template)
    torch.testing.assert_close(out.joints[0].double(), expected_joints, atol=1e-5, rtol=0)


def _rot(axis: str, degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {
        "x": torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis].float()


def test_elbow_rotation_moves_the_hand_only(body: BodyModel, smpl_data: SmplData) -> None:
    names = list(body.joint_names)
    elbow, wrist, hand = names.index("left_elbow"), names.index("left_wrist"), names.index("left_hand")
    with torch.no_grad():
        rest = body.forward_axis_angle(torch.zeros(1, 10), torch.zeros(1, J, 3))
    forearm = rest.joints[0, wrist] - rest.joints[0, elbow]
    # 90 degrees about an axis perpendicular to the forearm (all parents are unrotated, so the
    # elbow's local frame is the world frame).
    axis = torch.linalg.cross(forearm, torch.tensor([0.0, 0.0, 1.0]))
    pose = torch.zeros(1, J, 3)
    pose[0, elbow] = axis / axis.norm() * (math.pi / 2)
    with torch.no_grad():
        bent = body.forward_axis_angle(torch.zeros(1, 10), pose)

    r, b = rest.joints[0], bent.joints[0]
    assert math.isclose((b[wrist] - r[wrist]).norm(), math.sqrt(2) * forearm.norm(), rel_tol=1e-4)
    assert (b[hand] - r[hand]).norm() > 0.5 * forearm.norm()
    torch.testing.assert_close((b[wrist] - b[elbow]).norm(), forearm.norm())  # the forearm stays rigid
    torch.testing.assert_close(torch.dot(b[wrist] - b[elbow], forearm), torch.tensor(0.0), atol=1e-5, rtol=0)
    others = [i for i in range(J) if i not in (wrist, hand)]
    torch.testing.assert_close(b[others], r[others])

    owner = smpl_data.lbs_weights.argmax(axis=1)
    shift = (bent.vertices[0] - rest.vertices[0]).norm(dim=1)
    left_hand = torch.from_numpy(np.isin(owner, [wrist, hand]))
    right_hand = torch.from_numpy(np.isin(owner, [names.index("right_wrist"), names.index("right_hand")]))
    assert left_hand.any() and right_hand.any()
    assert shift[left_hand].min() > 0.2 * forearm.norm()
    # the other hand moves at most through pose blend shapes: an order of magnitude less
    assert shift[right_hand].mean() < 0.1 * shift[left_hand].mean()


def test_betas_change_the_shape_and_transl_moves(body: BodyModel, smpl_data: SmplData) -> None:
    rotmats = torch.eye(3).expand(1, J, 3, 3)
    betas = torch.zeros(1, 10)
    betas[0, 0] = 2.0
    with torch.no_grad():
        base = body(torch.zeros(1, 10), rotmats)
        shaped = body(betas, rotmats)
        moved = body(torch.zeros(1, 10), rotmats, torch.tensor([[1.0, 2.0, 3.0]]))
    expected = smpl_data.v_template + 2.0 * smpl_data.shapedirs[:, :, 0]
    torch.testing.assert_close(shaped.vertices[0], torch.from_numpy(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(moved.vertices - base.vertices, torch.tensor([1.0, 2.0, 3.0]).expand(1, V, 3))
    torch.testing.assert_close(moved.joints - base.joints, torch.tensor([1.0, 2.0, 3.0]).expand(1, J, 3))


def test_axis_angle_matches_rotation_matrices(body: BodyModel) -> None:
    pose = torch.zeros(1, J, 3)
    pose[0, 18] = torch.tensor([0.0, math.pi / 2, 0.0])
    pose[0, 0] = torch.tensor([0.3, 0.0, 0.0])
    rotmats = torch.eye(3).expand(1, J, 3, 3).clone()
    rotmats[0, 18] = _rot("y", 90)
    rotmats[0, 0] = _rot("x", math.degrees(0.3))
    with torch.no_grad():
        a = body.forward_axis_angle(torch.zeros(1, 10), pose)
        b = body(torch.zeros(1, 10), rotmats)
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=0)


def test_pkl_and_npz_give_identical_outputs(smpl_data: SmplData, body: BodyModel, tmp_path: Path) -> None:
    npz_data = load_smpl_data(_save_as_npz(smpl_data, tmp_path / "SMPL_NEUTRAL.npz"))
    other = BodyModel(npz_data).eval()
    gen = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(3, J, 3, generator=gen)
    betas = torch.randn(3, 10, generator=gen)
    with torch.no_grad():
        a = body.forward_axis_angle(betas, pose)
        b = other.forward_axis_angle(betas, pose)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.joints, b.joints)
    np.testing.assert_array_equal(body.faces, other.faces)


def test_model_attributes_and_device_moves(body: BodyModel, smpl_data: SmplData) -> None:
    assert body.faces.shape == (F, 3) and body.faces.dtype == np.int64
    assert body.parents.tolist()[0] == -1 and body.parents.shape == (J,)
    model = BodyModel(smpl_data).to(torch.float64)  # every array is a buffer: .to() moves them all
    assert all(t.dtype == torch.float64 for t in model.buffers() if t.is_floating_point())
    with torch.no_grad():
        out = model.forward_axis_angle(
            torch.zeros(1, 10, dtype=torch.float64), torch.zeros(1, J, 3, dtype=torch.float64)
        )
    assert out.vertices.dtype == torch.float64
    model.to("meta")
    assert all(t.device.type == "meta" for t in model.buffers())


def test_bad_input_shapes_are_rejected(body: BodyModel) -> None:
    with pytest.raises(ValueError, match="betas"):
        body(torch.zeros(1, 9), torch.eye(3).expand(1, J, 3, 3))
    with pytest.raises(ValueError, match="rotmats"):
        body(torch.zeros(1, 10), torch.eye(3).expand(1, 23, 3, 3))
    with pytest.raises(ValueError, match="transl"):
        body(torch.zeros(1, 10), torch.eye(3).expand(1, J, 3, 3), torch.zeros(2, 3))


def test_load_body_model(smpl_folder: Path, tmp_path: Path, smpl_data: SmplData) -> None:
    model = load_body_model(smpl_folder)
    assert isinstance(model, BodyModel)
    assert isinstance(load_body_model(smpl_folder, gender="Male"), BodyModel)
    with pytest.raises(BadInput, match="gender"):
        load_body_model(smpl_folder, gender="robot")
    with pytest.raises(AssetMissing, match=r"SMPL_NEUTRAL\.pkl"):
        load_body_model(tmp_path)
    _save_as_npz(smpl_data, tmp_path / "SMPL_NEUTRAL.npz")
    assert isinstance(load_body_model(tmp_path), BodyModel)
