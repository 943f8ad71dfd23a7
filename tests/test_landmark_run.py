"""reconstruct with the landmark solver: real motion with no licensed download installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.motion_format import read_motion
from core.reconstruct import ReconstructOptions, reconstruct
from core.sample_clip import write_sample_clip

DANCER = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "dancer.mp4"


def _check_follows_the_person(motion):
    person = motion.people[0]
    assert motion.meta["options"]["solver"] == "landmarks"
    # The rig's joints land near BlazePose's landmarks (issue 11: median under 5 % of the height).
    assert np.nanmedian(person.reprojection_px) < 0.05 * np.median(person.box[:, 3])
    return person


def test_auto_picks_landmarks_without_weights_and_writes_a_usable_file(tmp_path):
    clip = tmp_path / "sample.mp4"
    write_sample_clip(clip, seconds=1.5, width=480, height=360)
    out, empty = tmp_path / "m.npz", tmp_path / "assets"
    empty.mkdir()  # an asset folder without the STAF weights (nor SMPL: the look-alike body is used)
    motion = reconstruct(clip, out, ReconstructOptions(assets=str(empty), progress="none"))
    assert "no STAF weights" in motion.meta["options"]["solver_rule"]
    assert motion.meta["assets"]["kind"] == "look-alike"
    back = read_motion(out)
    _check_follows_the_person(back)
    assert len(back.people[0]) >= 0.8 * len(back.frame_index)


@pytest.mark.skipif(not DANCER.is_file(), reason=f"the shared real clips are absent ({DANCER})")
def test_on_a_real_clip_the_character_moves_with_the_person(tmp_path):
    motion = reconstruct(DANCER, tmp_path / "d.npz", ReconstructOptions(end="60", progress="none",
                                                                         solver="landmarks"))
    person = _check_follows_the_person(motion)
    # Not static: knees and shoulders turn by tens of degrees over two seconds of dancing.
    spread = np.degrees(np.ptp(person.pose[:, [4, 5, 16, 17]], axis=0)).max()
    assert spread > 15.0, spread
