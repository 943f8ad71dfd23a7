"""The clean-up stage: from STAF's per-frame camera-space output to motion an animator can use.

Foot contacts, the ground plane and world frame, the camera's own rotation, a depth-consistent
world trajectory, foot lock and optional filters. numpy/scipy/OpenCV only (no torch, no bpy), so
every output (Blender, FBX, BVH, glTF) gets the same motion.
"""
