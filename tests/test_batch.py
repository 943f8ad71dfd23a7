"""``python -m core batch``: a local pool and a Ray cluster over tiny clips, a worker killed mid-clip,
reruns, manifests, output names, and the inputs that are refused before any work starts."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from core.batch.inputs import Entry, expand_inputs
from core.batch.plan import plan_clips
from core.batch.worker import TEST_KILL_ENV
from core.cli import main
from core.motion_format import read_motion
from core.reconstruct import ReconstructOptions
from core.sample_clip import write_sample_clip

SUMMARY = {"batch_summary.csv", "batch_summary.json"}


def base_args(assets: Path) -> list[str]:
    # The clips are under a second long: keep people seen for 0.1 s. fp32: these tests are about the
    # batch, not about which precision --precision auto picks (tests/test_reconstruct.py is).
    return ["--assets", str(assets), "--device", "cpu", "--precision", "fp32", "--min-track", "0.1",
            "--progress", "none"]


def batch(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["batch", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary(out: Path) -> dict[str, dict[str, str]]:
    """The CSV summary by clip file name; checks the JSON says the same."""
    with open(out / "batch_summary.csv", newline="") as fh:
        rows = {Path(r["clip"]).name: r for r in csv.DictReader(fh)}
    doc = json.loads((out / "batch_summary.json").read_text())
    assert [Path(c["clip"]).name for c in doc["clips"]] == list(rows)
    assert doc["counts"]["failed"] == sum(r["status"] == "failed" for r in rows.values())
    return rows


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Two short clips of a person (12 and 15 frames) and a file that only claims to be a video."""
    folder = tmp_path_factory.mktemp("batch-clips")
    write_sample_clip(folder / "walk.mp4", seconds=0.4, width=320, height=240)
    write_sample_clip(folder / "zoom.mp4", seconds=0.5, width=320, height=240)
    (folder / "broken.mp4").write_text("not a video\n")
    return folder


@pytest.fixture()
def fake_blender(tmp_path) -> Path:
    """A stand-in for a bpy Python: writes its arguments into --fbx; fails for clips named zoom."""
    script = tmp_path / "fake-bpy-python"
    script.write_text(f"#!{sys.executable}\n" + """import sys
args = sys.argv[2:]
motion, fbx = args[args.index("--motion") + 1], args[args.index("--fbx") + 1]
if "zoom" in motion:
    sys.exit(print("error: fake failure", file=sys.stderr) or 3)
open(fbx, "w").write(" ".join(sys.argv[1:]))
""")
    script.chmod(0o755)
    return script


def test_local_pool_bad_clip_conversion_and_rerun(clips, standin_assets, fake_blender, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = batch(capsys, str(clips), "--out", str(out), "--workers", "2", "--fbx", "--blender",
                         str(fake_blender), *base_args(standin_assets))
    assert code == 5  # the first failed clip (broken.mp4, input order) is bad input
    rows = summary(out)
    assert list(rows) == ["broken.mp4", "walk.mp4", "zoom.mp4"]
    assert rows["broken.mp4"]["status"] == "failed" and "not a video file" in rows["broken.mp4"]["error"]
    assert (rows["walk.mp4"]["status"], rows["walk.mp4"]["frames"], rows["walk.mp4"]["people"]) == ("done", "12", "1")
    assert rows["zoom.mp4"]["status"] == "failed" and "blender conversion failed: error: fake failure" in \
        rows["zoom.mp4"]["error"]
    assert "failed: " in err and "broken.mp4" in err
    assert len(read_motion(out / "walk.npz").frame_index) == 12
    assert len(read_motion(out / "zoom.npz").frame_index) == 15  # the motion file is fine, only the FBX failed
    fbx = (out / "walk.fbx").read_text()
    assert fbx.split()[0].endswith("scripts/batch.py") and f"--motion {out / 'walk.npz'}" in fbx
    assert "--preset unity --overwrite" in fbx
    assert set(os.listdir(out)) == SUMMARY | {"walk.npz", "zoom.npz", "walk.fbx"}  # no temporary leftovers

    # A rerun skips what is done (the motion files are not touched); zoom's FBX is tried again.
    before = {n: (out / n).stat().st_mtime_ns for n in ("walk.npz", "zoom.npz", "walk.fbx")}
    code, _, _ = batch(capsys, str(clips), "--out", str(out), "--fbx", "--blender", str(fake_blender),
                       *base_args(standin_assets))
    rows = summary(out)
    assert code == 5
    assert rows["walk.mp4"]["status"] == "skipped" and rows["walk.mp4"]["frames"] == "12"
    assert rows["zoom.mp4"]["status"] == "failed" and "fake failure" in rows["zoom.mp4"]["error"]
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before


def test_killed_worker_is_retried_and_leaves_nothing_half_written(clips, standin_assets, tmp_path, capsys,
                                                                  monkeypatch):
    out, marker = tmp_path / "out", tmp_path / "killed"
    # 60 frames take a fresh worker several seconds: killed after 1.5 s, it is mid-clip (decoding).
    write_sample_clip(tmp_path / "long.mp4", seconds=2.0, width=320, height=240)
    monkeypatch.setenv(TEST_KILL_ENV, f"long,1.5,{marker}")
    # zoom runs beside it (its worker is stopped when the pool breaks), walk waits in the queue.
    code, _, _ = batch(capsys, str(tmp_path / "long.mp4"), str(clips / "zoom.mp4"), str(clips / "walk.mp4"),
                       "--out", str(out), "--workers", "2", *base_args(standin_assets))
    assert marker.exists(), "the test hook did not kill the worker"
    rows = summary(out)
    assert code == 0, {name: (r["status"], r["attempts"], r["error"]) for name, r in rows.items()}
    assert rows["long.mp4"]["status"] == "done" and rows["long.mp4"]["attempts"] == "2"
    assert rows["zoom.mp4"]["status"] == rows["walk.mp4"]["status"] == "done"
    assert len(read_motion(out / "long.npz").frame_index) == 60
    assert set(os.listdir(out)) == SUMMARY | {"long.npz", "zoom.npz", "walk.npz"}
    assert json.loads((out / "batch_summary.json").read_text())["retried"] >= 1
    if sys.platform == "linux":  # nothing the killed worker started lives on (its decoding process, say)
        assert leftover_processes(str(marker)) == []


def leftover_processes(tag: str) -> list[str]:
    """Command lines of the processes other than this one whose environment mentions ``tag`` (they
    descend from this test), but for multiprocessing's resource tracker (it lives as long as we do)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if tag.encode() in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                found.append((environ.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            pass
    return [cmd for cmd in found if "resource_tracker" not in cmd]


def test_ray_local_cluster(clips, standin_assets, tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'staf-mocap[ray]')")
    import logging

    # Ray's session folder holds unix sockets: keep its path short (pytest's tmp_path can be too long).
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", temp)
    token = Path(temp) / "auth_token"  # this cluster's token, instead of a new ~/.ray/auth_token
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    out, marker = tmp_path / "out", tmp_path / "killed"
    write_sample_clip(tmp_path / "long.mp4", seconds=2.0, width=320, height=240)  # killed mid-clip
    monkeypatch.setenv(TEST_KILL_ENV, f"long,1.5,{marker}")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, logging_level=logging.ERROR, log_to_driver=False)
    try:
        code, _, _ = batch(capsys, str(clips), str(tmp_path / "long.mp4"), "--out", str(out), "--ray",
                           *base_args(standin_assets))
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    rows = summary(out)
    assert code == 5
    assert rows["broken.mp4"]["status"] == "failed" and "not a video file" in rows["broken.mp4"]["error"]
    assert rows["walk.mp4"]["status"] == rows["zoom.mp4"]["status"] == rows["long.mp4"]["status"] == "done"
    assert marker.exists(), "the test hook did not kill the Ray worker"  # ... and Ray's retry finished the clip
    assert len(read_motion(out / "long.npz").frame_index) == 60
    assert len(read_motion(out / "zoom.npz").frame_index) == 15
    assert json.loads((out / "batch_summary.json").read_text())["backend"] == "ray"
    assert set(os.listdir(out)) == SUMMARY | {"walk.npz", "zoom.npz", "long.npz"}
    if sys.platform == "linux":
        assert leftover_processes(str(marker)) == []


def test_manifest_rows_each_reported(clips, standin_assets, tmp_path, capsys):
    manifest = tmp_path / "clips.csv"
    manifest.write_text(
        "video,end,max_people,detect_every,output\n"
        f"{clips / 'walk.mp4'},6,,,short/walk6.npz\n"
        "missing.mp4,,,,\n"
        f"{clips / 'zoom.mp4'},,two,,\n"
        f"{clips / 'zoom.mp4'},,,0,\n"
        "# a comment row,,,,\n")
    out = tmp_path / "out"
    code, _, err = batch(capsys, str(manifest), "--out", str(out), "--workers", "1", *base_args(standin_assets))
    assert code == 5
    with open(out / "batch_summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(Path(r["clip"]).name, r["status"]) for r in rows] == [
        ("walk.mp4", "done"), ("missing.mp4", "failed"), ("zoom.mp4", "failed"), ("zoom.mp4", "failed")]
    assert rows[0]["frames"] == "6" and Path(rows[0]["output"]) == out / "short" / "walk6.npz"
    assert len(read_motion(out / "short" / "walk6.npz").frame_index) == 6
    assert rows[1]["error"].endswith("missing.mp4: file not found")
    assert "line 4: column 'max_people': 'two' is not a whole number" in rows[2]["error"]
    assert "--detect-every 0: give a whole number from 1" in rows[3]["error"]
    assert err.count("failed: ") == 3

    manifest.write_text("video,speed\na.mp4,2\n")
    code, _, err = batch(capsys, str(manifest), "--out", str(out), *base_args(standin_assets))
    assert code == 5 and err.count("\n") == 1 and "unknown manifest column(s) speed" in err


def test_output_names_unique_and_stable(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Take.mp4").write_bytes(b"x")
    (tmp_path / "solo.mov").write_bytes(b"x")
    opts = ReconstructOptions()
    inputs = [str(tmp_path / "a"), str(tmp_path / "b" / "Take.mp4"), str(tmp_path / "solo.mov"),
              str(tmp_path / "a" / "Take.mp4")]  # the last is a duplicate of the folder's clip
    first = plan_clips(expand_inputs(inputs), tmp_path / "out", opts)
    names = [c.output.name for c in first]
    assert len(first) == 3 and names[2] == "solo.npz"
    assert names[0] != names[1] and all(n.startswith("Take-") and len(n) == len("Take-12345678.npz")
                                        for n in names[:2])
    again = plan_clips(expand_inputs([*inputs[1::-1], inputs[2]]), tmp_path / "out", opts)
    assert {c.label: c.output for c in again} == {c.label: c.output for c in first}  # order does not matter
    missing = plan_clips([Entry("x.mp4", None, error="x.mp4: file not found", exit_code=5)], tmp_path / "out", opts)
    assert missing[0].status == "failed" and missing[0].output is None


def test_refused_before_any_work(clips, standin_assets, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, what in ((afile, "is a file"), (afile / "sub", "cannot write there")):
        start = time.monotonic()
        code, _, err = batch(capsys, str(clips), "--out", str(out), *base_args(standin_assets))
        assert code == 6 and err.count("\n") == 1 and what in err, err
        assert time.monotonic() - start < 5
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder refuses only other users
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        code, _, err = batch(capsys, str(clips), "--out", str(ro), *base_args(standin_assets))
        assert code == 6 and err.count("\n") == 1
    code, _, err = batch(capsys, str(clips), "--out", str(tmp_path / "o"), "--max-people", "0",
                         *base_args(standin_assets))
    assert code == 5 and "--max-people 0" in err and not (tmp_path / "o").exists()
    code, _, err = batch(capsys, str(clips), "--out", str(tmp_path / "o"), "--assets", str(tmp_path / "none"),
                         "--device", "cpu", "--progress", "none")
    assert code == 3 and err.count("\n") == 1 and not list((tmp_path / "o").iterdir())


def test_unreachable_ray_address(clips, standin_assets, tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    code, _, err = batch(capsys, str(clips), "--out", str(tmp_path / "o"), f"--ray=127.0.0.1:{port}",
                         *base_args(standin_assets))
    assert code == 5 and err.count("\n") == 1, err
    assert "no Ray cluster answers" in err or "needs the ray package" in err
    assert time.monotonic() - start < 10
    assert not (tmp_path / "o").exists()


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Linux /proc), children first."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            pass
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's /proc to follow the workers")
def test_a_cancelled_batch_says_so_and_records_it_in_its_summary(standin_assets, tmp_path):
    """SIGTERM while a clip runs: exit 130 and one line, a summary that says the run was cancelled
    and the clip was not done, and no output or temporary file of the clip."""
    import signal
    import subprocess

    clip, out = tmp_path / "long.mp4", tmp_path / "out"
    write_sample_clip(clip, seconds=6.0, width=320, height=240)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "core", "batch", str(clip), "--out", str(out), "--workers", "1",
                             *base_args(standin_assets)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    # The clip has started once its worker has a process of its own below it (the decoding worker).
    while proc.poll() is None and time.monotonic() < deadline and len(_descendants(proc.pid)) < 3:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "cancelled" in lines[0], (proc.returncode, err)
    doc = json.loads((out / "batch_summary.json").read_text())
    assert doc["cancelled"] is True
    assert [c["status"] for c in doc["clips"]] == ["failed"] and "cancelled" in doc["clips"][0]["error"]
    assert set(os.listdir(out)) == SUMMARY
