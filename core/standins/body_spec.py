"""What the stand-in body shares with SMPL: its sizes, joint names and tree, the names of the
regressors' extra points, and the body parts the surface is built from.

It imports nothing from the modules that build the body, so all of them, and ``core.standins.body``
(which re-exports these names), can import it without a cycle.
"""

from __future__ import annotations

from core.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS

__all__ = [
    "EXTRA_JOINT_NAMES",
    "H36M_JOINT_NAMES",
    "HEAD",
    "JOINT_NAMES",
    "LEFT_ARM",
    "LEFT_LEG",
    "NUM_BETAS",
    "NUM_FACES",
    "NUM_JOINTS",
    "NUM_POSE_BASIS",
    "NUM_VERTICES",
    "PARENTS",
    "PART_NAMES",
    "RIGHT_ARM",
    "RIGHT_LEG",
    "TORSO",
]


NUM_VERTICES = 6890
NUM_FACES = 13776  # 2 * 6890 - 4: a closed genus-0 triangle mesh
NUM_JOINTS = 24
NUM_BETAS = 10
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207

JOINT_NAMES = SMPL_JOINT_NAMES

#: Parent of each joint in ``JOINT_NAMES`` (SMPL's kinematic tree), -1 for the root.
PARENTS = SMPL_PARENTS

#: The 9 points of ``j_regressor_extra``, in the order SPIN appends them after SMPL's joints.
EXTRA_JOINT_NAMES: tuple[str, ...] = (
    "right_hip_lsp",
    "left_hip_lsp",
    "neck_lsp",
    "head_top_lsp",
    "pelvis_mpii",
    "thorax_mpii",
    "spine_h36m",
    "jaw_h36m",
    "head_h36m",
)

#: The 17 points of ``j_regressor_h36m``, in Human3.6M's order.
H36M_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)

#: Body parts the surface is built from; ``StandInBody.part_labels`` indexes this tuple.
PART_NAMES: tuple[str, ...] = ("torso", "left_leg", "right_leg", "left_arm", "right_arm", "head")
TORSO, LEFT_LEG, RIGHT_LEG, LEFT_ARM, RIGHT_ARM, HEAD = range(6)
