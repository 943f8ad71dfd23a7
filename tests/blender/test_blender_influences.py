"""Bone influences per vertex and the FBX export's bpy-free pieces (no Blender): keeping the
strongest weights, the mesh deviation that costs (checked against a per-vertex loop and against
the engine's SMPL), take names, exact frame rates, and batch's --max-influences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.smpl import BodyModel, load_smpl_data
from core.standins.motion import synthetic_motion
from staf_blender.batch import build_parser, plan_batch
from staf_blender.fbx_presets import PRESETS, export_frame_rate, take_name
from staf_blender.influences import (
    influence_counts,
    keep_strongest,
    rig_deviation,
    skinning_deviation,
    skinning_matrices,
)
from staf_blender.plan import ImportOptions, plan_import
from staf_blender.rotations import CAMERA_TO_WORLD


@pytest.fixture(scope="module")
def smpl(standin_assets):
    return load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def walk(smpl):
    motion = synthetic_motion(smpl, n_frames=24, n_people=1, seed=3)
    return motion, plan_import(motion, ImportOptions(name="walk")).rigs[0]


def test_keep_strongest_keeps_the_largest_and_renormalises():
    weights = np.array([[0.1, 0.4, 0.2, 0.3, 0.0],
                        [0.25, 0.25, 0.25, 0.25, 0.0],  # a tie: the lower bone indices win
                        [0.0, 0.0, 0.0, 0.0, 0.0],  # no weight at all stays without
                        [0.0, 0.0, 1.0, 0.0, 0.0]])
    kept = keep_strongest(weights, 2)
    assert np.allclose(kept[0], [0.0, 4 / 7, 0.0, 3 / 7, 0.0])
    assert np.allclose(kept[1], [0.5, 0.5, 0.0, 0.0, 0.0])
    assert np.array_equal(kept[2], np.zeros(5)) and np.array_equal(kept[3], weights[3])
    assert influence_counts(weights).tolist() == [4, 4, 0, 1] and influence_counts(kept).max() == 2
    assert np.array_equal(keep_strongest(weights, 5), weights)  # nothing to drop
    rng = np.random.default_rng(0)
    dense = rng.random((200, 24)) * (rng.random((200, 24)) < 0.4)
    for limit in (1, 3, 4, 9):
        kept = keep_strongest(dense, limit)
        assert influence_counts(kept).max() <= limit
        live = dense.sum(1) > 0
        assert np.abs(kept[live].sum(1) - 1.0).max() < 1e-12
        # every kept weight is at least as large as every dropped one of its vertex
        dropped = np.where((kept == 0) & (dense > 0), dense, 0.0).max(1)
        smallest = np.where(kept > 0, dense, np.inf).min(1)
        assert (dropped[live] <= smallest[live]).all()
    for bad in (0, -1, True, 2.5, "4"):
        with pytest.raises(ValueError, match="whole number of at least 1"):
            keep_strongest(dense, bad)


def test_deviation_against_a_per_vertex_loop():
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(30, 3))
    weights = rng.random((30, 6)) * (rng.random((30, 6)) < 0.7)
    weights[:, 0] += 0.01
    weights /= weights.sum(1, keepdims=True)
    kept = keep_strongest(weights, 2)
    skins = np.tile(np.eye(4), (5, 6, 1, 1))
    skins[:, :, :3, :3] = np.linalg.qr(rng.normal(size=(5, 6, 3, 3)))[0]
    skins[:, :, :3, 3] = rng.normal(size=(5, 6, 3))
    got = skinning_deviation(vertices, weights, kept, skins)
    for f in range(5):
        worst = 0.0
        for v in range(30):
            point = np.append(vertices[v], 1.0)
            a = sum(weights[v, j] * skins[f, j] @ point for j in range(6))[:3]
            b = sum(kept[v, j] * skins[f, j] @ point for j in range(6))[:3]
            worst = max(worst, float(np.linalg.norm(a - b)))
        assert got[f] == pytest.approx(worst, abs=1e-12)
    # bones that do not move (rest pose) deform nothing, whatever the weights
    assert np.abs(skinning_deviation(vertices, weights, kept, np.tile(np.eye(4), (2, 6, 1, 1)))).max() < 1e-12
    # one bone moved by t: a vertex moving half of its weight there deviates by |t| / 2
    moved = np.tile(np.eye(4), (1, 2, 1, 1))
    moved[0, 1, :3, 3] = (0.0, 0.3, 0.4)
    assert skinning_deviation(np.zeros((1, 3)), np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]), moved)[0] == \
        pytest.approx(0.25)


def test_skinning_matrices_deform_like_the_engines_smpl(smpl, walk):
    motion, rig = walk
    person = motion.people[0]
    body = BodyModel(dataclasses.replace(smpl, posedirs=np.zeros_like(smpl.posedirs)))
    with torch.no_grad():
        out = body.forward_axis_angle(torch.tensor(np.tile(person.shape, (len(person), 1))),
                                      torch.tensor(person.pose), torch.tensor(person.translation))
    engine = out.vertices.numpy().astype(np.float64) @ CAMERA_TO_WORLD.T
    skins = skinning_matrices(rig.bone_heads, rig.bone_parents, rig.rotations, rig.root_location)
    v = np.concatenate([rig.vertices.astype(np.float64), np.ones((len(rig.vertices), 1))], axis=1)
    for f in (0, 11, 23):
        posed = np.einsum("vj,jab,vb->va", rig.weights.astype(np.float64), skins[f, :, :3], v)
        assert np.abs(posed - engine[f]).max() < 1e-5


def test_rig_deviation_over_a_walk(walk):
    _, rig = walk
    counts = influence_counts(rig.weights)
    results = {limit: rig_deviation(rig, limit) for limit in (1, 2, 4, 6, int(counts.max()))}
    for limit, (_, changed) in results.items():
        assert changed == int((counts > limit).sum())
    assert results[int(counts.max())] == (0.0, 0)  # every influence kept: nothing moves
    assert results[1][0] > results[4][0] > 1e-3  # SMPL's skin does move with 4 influences


def test_presets_limit_influences_for_the_engines():
    assert (PRESETS["unity"].max_influences, PRESETS["unreal"].max_influences, PRESETS["generic"].max_influences) == \
        (4, 4, None)
    assert PRESETS["unreal"].armature_node == "Armature" and PRESETS["unity"].armature_node is None


def test_take_names():
    assert take_name(["walk_p0"], [0]) == "walk_p0"
    assert take_name(["party_p0", "party_p2"], [0, 2]) == "party"  # one clip: its name
    assert take_name(["a_p0", "b_p0"], [0, 0]) == "a_p0+b_p0"  # characters of two imports
    assert take_name(["_p1", "x_p1"], [1, 2]) == "_p1+x_p1"
    long = take_name([f"{'é' * 20}_p{i}" for i in range(2)] + ["x" * 40], [0, 1, 0])
    assert len(long.encode()) <= 63 and long.startswith("é" * 20)  # cut whole characters only
    with pytest.raises(ValueError):
        take_name([], [])


@pytest.mark.parametrize("scene, clip, expected", [
    ((30, 1.0010000467300415), (30000, 1001), (30000, 1001.0)),  # Blender's 32-bit fps_base, made exact
    ((60, 1.0010000467300415), (60000, 1001), (30000, 500.5)),  # fps above 32767: halved, still exact
    ((24, 1.0010000467300415), (24000, 1001), (24000, 1001.0)),
    ((25, 1.0), (25, 1), (25, 1.0)),
    ((24, 1.0), (30000, 1001), (24, 1.0)),  # the user's scene runs at another rate: theirs
    ((30, 1.001), None, (30, 1.001)),
    ((32767, 32767 / 32767.5), (65535, 2), (32767, 32767 / 32767.5)),  # no exact pair Blender holds: the scene's
])
def test_export_frame_rate_is_exact(scene, clip, expected):
    fps, base = export_frame_rate(*scene, clip)
    assert (fps, base) == expected
    if clip and expected != scene:
        assert fps / base == clip[0] / clip[1]  # bit for bit the clip's rate


def test_batch_max_influences(tmp_path):
    motion = tmp_path / "walk.npz"
    motion.write_bytes(b"x")

    def plan(*extra):
        return plan_batch(build_parser().parse_args(["--motion", str(motion), "--fbx", str(tmp_path / "w.fbx"),
                                                     *extra]))

    assert plan().max_influences is None  # the preset's
    assert plan("--max-influences", "0").max_influences == 0 and plan("--max-influences", "8").max_influences == 8
    for bad in ("-1", "four", "2.5"):
        with pytest.raises(SystemExit) as err:
            plan("--max-influences", bad)
        assert err.value.code == 2
