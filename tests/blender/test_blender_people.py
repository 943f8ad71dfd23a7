"""People without Blender: the person choice, the track list, split FBX names, the fake engine's
``--person`` / ``--max-people`` (the engine's contract) and batch mode's people arguments."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from multi_person import TRIO_GAP, TRIO_SPANS, trio_motion

from staf_blender.batch import build_parser, main, plan_batch
from staf_blender.engine import EngineOptions, reconstruct_command, run_engine
from staf_blender.errors import AddonError
from staf_blender.files import check_all_writable, existing_split_files, split_targets
from staf_blender.motion_io import load_motion
from staf_blender.people import PEOPLE_HELP, TrackSummary, free_base_name, parse_people, people_spec, summarise_people
from staf_blender.plan import ImportOptions, plan_import

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def trio(standin_assets):
    from core.smpl import load_smpl_data

    return trio_motion(load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl"))


@pytest.fixture(scope="module")
def trio_file(trio, tmp_path_factory):
    from core.motion import write_motion

    path = tmp_path_factory.mktemp("trio") / "trio.npz"
    write_motion(path, trio)
    return path


@pytest.mark.parametrize("text, expected", [
    ("all", None), ("ALL", None), ("", None), ("  ", None), ("0", (0,)), ("0,2", (0, 2)), ("0, 2", (0, 2)),
    ("2 0", (2, 0)), ("1,1,3", (1, 3)), (" 7 ", (7,)),
])
def test_people_text(text, expected):
    assert parse_people(text) == expected
    assert parse_people(people_spec(expected)) == expected  # what the engine gets reads back the same


@pytest.mark.parametrize("text", ["one", "-1", "0;2", "1.5", "0,,x", "all,0", "+1"])
def test_bad_people_text_is_one_clear_line(text):
    with pytest.raises(AddonError) as err:
        parse_people(text)
    assert str(err.value) == f"{PEOPLE_HELP}, not '{text.strip()}'" and err.value.exit_code == 5


def test_people_spec():
    assert people_spec(None) == "all" and people_spec((0, 2)) == "0,2" and people_spec([3]) == "3"


def test_track_summaries_of_a_three_person_file(trio_file):
    motion = load_motion(trio_file)
    tracks = summarise_people(motion)
    gap = TRIO_GAP[1] - TRIO_GAP[0]
    assert tracks == (
        TrackSummary(0, 40 - gap, 0, 39, 2),
        TrackSummary(1, 40 - TRIO_SPANS[1][0], 12, 39, 1),
        TrackSummary(2, 30, 0, 29, 1),
    )
    assert tracks[0].label() == f"#0  {40 - gap} frames, 1-40 (2 parts)"
    assert tracks[1].label(frame_offset=0) == "#1  28 frames, 12-39"
    assert TrackSummary(4, 1, 7, 7, 1).label() == "#4  1 frame, 8-8"
    assert TrackSummary(5, 0, 0, 0, 0).label() == "#5  no frames"


def test_each_person_is_planned_on_their_own_frames_only(trio_file):
    motion = load_motion(trio_file)
    plan = plan_import(motion, ImportOptions(name="trio"))
    assert [r.armature_name for r in plan.rigs] == ["trio_p0", "trio_p1", "trio_p2"]
    by_id = {r.person_id: r for r in plan.rigs}
    for person in motion.people:
        np.testing.assert_array_equal(by_id[person.person_id].frames, person.frame + 1)
    assert not set(range(TRIO_GAP[0] + 1, TRIO_GAP[1] + 1)) & set(by_id[0].frames.tolist())
    assert by_id[1].frames[0] == 13 and by_id[2].frames[-1] == 30
    assert (plan.scene.frame_start, plan.scene.frame_end) == (1, 40)  # the scene spans everyone
    only = plan_import(motion, ImportOptions(name="trio", people=(2, 0)))
    assert [r.person_id for r in only.rigs] == [2, 0]


def test_free_base_name_never_reuses_a_taken_name():
    taken = {"clip", "clip_p0", "clip_p0_body", "clip_2_p1"}
    assert free_base_name("clip", [0], taken.__contains__) == "clip_2"
    assert free_base_name("clip", [1], taken.__contains__) == "clip_3"  # clip itself is a collection
    assert free_base_name("other", [0], taken.__contains__) == "other"
    long = "x" * 60
    name = free_base_name(long, [0], {"x" * 40}.__contains__)
    assert name == "x" * 38 + "_2" and len(name) <= 40


def test_split_names_and_checks_before_writing(tmp_path):
    out = tmp_path / "clip.fbx"
    targets = split_targets(out, [0, 2])
    assert targets == {0: tmp_path / "clip_p0.fbx", 2: tmp_path / "clip_p2.fbx"}
    with pytest.raises(AddonError, match="several characters have person id 0"):
        split_targets(out, [0, 2, 0])
    (tmp_path / "clip_p2.fbx").write_text("mine")
    (tmp_path / "clip_px.fbx").write_text("not ours")
    (tmp_path / "clip_p10.fbx.bak").write_text("not ours")
    assert existing_split_files(out) == [tmp_path / "clip_p2.fbx"]
    with pytest.raises(AddonError, match=r"clip_p2\.fbx exists"):
        check_all_writable(targets.values(), suffix=".fbx", overwrite=False)
    assert check_all_writable(targets.values(), suffix=".fbx") == list(targets.values())
    assert (tmp_path / "clip_p2.fbx").read_text() == "mine"


# The fake engine follows the engine's --person / --max-people contract (tests/blender/fake_engine.py).

def fake(trio_file: Path, tmp_path: Path, *flags: str) -> tuple[int, str, Path]:
    """Run the fake engine on the trio; returns (exit code, stderr, output path)."""
    import subprocess

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    out = tmp_path / "out.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_ENGINE_")}
    env["FAKE_ENGINE_MOTION"] = str(trio_file)
    proc = subprocess.run([sys.executable, str(HERE / "fake_engine.py"), "reconstruct", str(video), "-o", str(out),
                           "--progress", "json", *flags], env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stderr, out


@pytest.mark.parametrize("flags, ids", [
    ((), (0, 1, 2)), (("--person", "all"), (0, 1, 2)), (("--person", "0,2"), (0, 2)), (("--person", "1"), (1,)),
    (("--person", "2, 0"), (0, 2)),
    (("--max-people", "2"), (0, 1)), (("--person", "1", "--max-people", "2"), (1,)),
])
def test_fake_engine_writes_the_people_asked_for(trio_file, tmp_path, flags, ids):
    code, err, out = fake(trio_file, tmp_path, *flags)
    assert code == 0, err
    motion = load_motion(out)
    assert tuple(p.person_id for p in motion.people) == ids
    for person in motion.people:  # each keeps their own frames
        original = next(p for p in load_motion(trio_file).people if p.person_id == person.person_id)
        np.testing.assert_array_equal(person.frame, original.frame)


@pytest.mark.parametrize("flags, code, message", [
    (("--person", "5"), 5, "error: no person 5 in this clip (ids there are: 0, 1, 2)"),
    (("--person", "2", "--max-people", "2"), 5, "error: no person 2 in this clip (ids there are: 0, 1)"),
    (("--person", "x"), 5, "error: --person 'x': give 'all', one id (0) or ids separated by commas (0,2)"),
    (("--person", "0;2"), 5, "error: --person '0;2'"),
    (("--max-people", "0"), 5, "error: --max-people 0: give at least 1"),
    (("--max-people", "two"), 2, "argument --max-people: invalid int value"),
])
def test_fake_engine_refuses_like_the_engine(trio_file, tmp_path, flags, code, message):
    returncode, err, out = fake(trio_file, tmp_path, *flags)
    assert returncode == code and message in err and not out.exists()
    if code == 5:
        assert err.strip().splitlines()[-1].startswith(message)


def test_the_addons_command_line_runs_the_fake_engine(trio_file, tmp_path):
    from fake_engine import make_fake_engine_package

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    out, log = tmp_path / "out.npz", tmp_path / "args.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_ENGINE_")}
    env.update(FAKE_ENGINE_MOTION=str(trio_file), FAKE_ENGINE_LOG=str(log),
               PYTHONPATH=str(make_fake_engine_package(tmp_path / "pkg")))
    cmd = reconstruct_command(sys.executable, video, out, EngineOptions(people=(0, 2), max_people=3))
    assert run_engine(cmd, out, env=env, cwd=tmp_path, poll_interval=0.01) == out
    assert [p.person_id for p in load_motion(out).people] == [0, 2]
    args = json.loads(log.read_text())
    assert args[args.index("--person") + 1] == "0,2" and args[args.index("--max-people") + 1] == "3"
    with pytest.raises(AddonError, match=r"no person 7 in this clip \(ids there are: 0, 1, 2\)") as err:
        run_engine(reconstruct_command(sys.executable, video, out, EngineOptions(people=(7,))), out, env=env,
                   cwd=tmp_path, poll_interval=0.01)
    assert err.value.exit_code == 5


# Batch mode's people arguments.

def plan(*argv):
    return plan_batch(build_parser().parse_args([str(a) for a in argv]))


def test_batch_people_options(tmp_path):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"x")
    p = plan(video, "--fbx", tmp_path / "walk.fbx", "--person", "0,2", "--max-people", "4", "--split")
    assert p.engine.people == (0, 2) and p.engine.max_people == 4 and p.split
    assert "--person 0,2 --max-people 4" in " ".join(reconstruct_command("py", video, "o.npz", p.engine))
    p = plan(video, "--fbx", tmp_path / "walk.fbx")
    assert p.engine.people is None and p.engine.max_people is None and not p.split
    assert "--person all" in " ".join(reconstruct_command("py", video, "o.npz", p.engine))


@pytest.mark.parametrize("argv, message", [
    (["--person", "0;2"], "argument --person: People: 'all' or ids like 0, 2, not '0;2'"),
    (["--person", "-1"], "argument --person: People: 'all' or ids like 0, 2"),
    (["--people", "x"], "argument --people: People: 'all' or ids like 0, 2, not 'x'"),
    (["--max-people", "0"], "argument --max-people: max people must be a whole number of at least 1"),
    (["--max-people", "two"], "argument --max-people"),
])
def test_batch_bad_people_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(video), "--fbx", str(tmp_path / "walk.fbx"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.mp4"]


def test_batch_split_refuses_existing_files_before_any_work(tmp_path):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"x")
    (tmp_path / "walk.fbx").write_text("the one-file output: not written with --split")
    plan(video, "--fbx", tmp_path / "walk.fbx", "--split")  # walk.fbx itself is not a target
    (tmp_path / "walk_p2.fbx").write_text("mine")
    with pytest.raises(AddonError, match=r"walk_p2\.fbx exists: pass --overwrite"):
        plan(video, "--fbx", tmp_path / "walk.fbx", "--split")  # ids not known yet: any such file
    with pytest.raises(AddonError, match=r"walk_p2\.fbx exists"):
        plan(video, "--fbx", tmp_path / "walk.fbx", "--split", "--person", "0,2")
    plan(video, "--fbx", tmp_path / "walk.fbx", "--split", "--person", "0,1")  # neither file exists
    plan(video, "--fbx", tmp_path / "walk.fbx", "--split", "--overwrite")
    with pytest.raises(AddonError, match="--split needs --fbx"):
        plan(video, "--blend", tmp_path / "walk.blend", "--split")
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"x")
    (tmp_path / "fbx").mkdir()
    (tmp_path / "fbx" / "a_p0.fbx").write_text("mine")
    with pytest.raises(AddonError, match=r"a_p0\.fbx exists"):
        plan(clips, "--fbx", tmp_path / "fbx", "--split")
    assert (tmp_path / "walk_p2.fbx").read_text() == "mine"
