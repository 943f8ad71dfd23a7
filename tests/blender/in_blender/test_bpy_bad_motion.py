"""Bad motion files through the headless batch inside Blender (issue 12, classes 1 and 2).

``python scripts/batch.py --motion BAD.npz --blend OUT.blend --fbx OUT.fbx``: exit 5, exactly one
``error:`` line on stderr naming the field, nothing written (the folder hashed before and after),
nothing executed. Odd but usable files (a clip path that is not a video, a lens Blender cannot
hold) import with a note instead of a traceback in Blender's setters.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "batch.py"
sys.path.insert(0, str(ROOT / "tests"))  # the shared bad files (numpy and core.motion_format only)

from bad_motion_cases import BAD_FILES  # noqa: E402
from motion_samples import npz_bytes, sample_arrays, with_meta  # noqa: E402

IN_BLENDER = ("fps_text", "fps_zero", "focal_nan", "frames_huge", "person_id_huge", "meta_deep", "version_text",
              "pose_nan", "clip_path_nul", "pickled_pose", "zip_bomb_weights", "header_declares_1e12",
              "declared_4gb_member")


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def batch(motion: Path, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_ENGINE_", "STAF_", "PYTHONPATH"))}
    return subprocess.run([sys.executable, str(SCRIPT), "--motion", str(motion), "--blend", str(out / "c.blend"),
                           "--fbx", str(out / "c.fbx")], cwd=out, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", IN_BLENDER)
def test_batch_refuses_a_bad_motion_file_with_one_line(name, tmp_path):
    build, words = BAD_FILES[name]
    marker = tmp_path / "payload_ran.txt"
    bad = tmp_path / f"{name}.npz"
    bad.write_bytes(build(marker))
    before = snapshot(tmp_path)
    proc = batch(bad, tmp_path)
    assert proc.returncode == 5, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(tmp_path) == before and not marker.exists()


@pytest.mark.parametrize("meta, note", [
    ({"source__path": "MOTION"}, None),  # the clip path names a file that is not a video
    ({"source__path": "/" + "x" * 5000}, "source.path"),  # too long for the reader
    ({"camera__focal_length_px": 1.0}, "lens under"),
    ({"source__width": 2}, "outside Blender's"),
])
def test_odd_but_usable_files_import_without_a_traceback(meta, note, tmp_path):
    motion = tmp_path / "odd.npz"
    meta = {k: (str(motion) if v == "MOTION" else v) for k, v in meta.items()}
    motion.write_bytes(npz_bytes(with_meta(sample_arrays(), **meta)))
    proc = batch(motion, tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    if note == "source.path":  # over 4096 characters: refused by the reader, one line
        assert proc.returncode == 5 and note in proc.stderr and not (tmp_path / "c.blend").exists()
        return
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.blend").is_file() and (tmp_path / "c.fbx").is_file()
    if note:
        assert note in proc.stdout + proc.stderr
