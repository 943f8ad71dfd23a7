"""Differences between the supported Blender versions, in one place.

Blender 4.4 introduced slotted actions (F-curves live in a channelbag per slot, in a keyframe strip
of a layer); 5.0 removed the legacy ``Action.fcurves``. Everything here goes through the slot and
channelbag API, which 4.5 and 5.0 share; 4.2 and 4.3 (no slots) use the legacy calls. On 4.5,
curves made with the legacy API and then assigned could leave the object without an action slot
(nothing animates, and FBX export writes a static pose): :func:`new_object_action` checks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bpy

__all__ = ["ActionChannels", "action_fcurves", "copy_action_to", "has_slotted_actions", "new_object_action"]


def has_slotted_actions() -> bool:
    """Whether this Blender has slotted actions (4.4 and newer)."""
    return bpy.app.version >= (4, 4, 0)


@dataclass
class ActionChannels:
    """Where to create F-curves for one object: ``new_fcurve(data_path, index, group)``."""

    action: Any
    _curves: Any
    _groups: Any
    _legacy: bool

    def new_fcurve(self, data_path: str, index: int, group: str) -> Any:
        """A new F-curve in the object's channels, listed under the group ``group``."""
        if self._legacy:
            return self._curves.new(data_path, index=index, action_group=group)
        curve = self._curves.new(data_path, index=index)
        grp = self._groups.get(group) or self._groups.new(group)
        curve.group = grp
        return curve


def new_object_action(obj: Any, name: str) -> ActionChannels:
    """Create an action named ``name`` for ``obj``, assign it (with its slot) and return its channels."""
    action = bpy.data.actions.new(name)
    anim = obj.animation_data_create()
    if not has_slotted_actions():
        anim.action = action
        return ActionChannels(action, action.fcurves, action.groups, True)
    slot = action.slots.new(id_type='OBJECT', name=obj.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type='KEYFRAME')
    bag = strip.channelbag(slot, ensure=True)
    anim.action = action
    anim.action_slot = slot
    if anim.action_slot is None or anim.action_slot.handle != slot.handle:
        raise RuntimeError(f"Blender did not assign the action slot of '{name}' to '{obj.name}'")
    return ActionChannels(action, bag.fcurves, bag.groups, False)


def action_fcurves(obj: Any) -> Iterator[Any]:
    """The F-curves that animate ``obj`` (those of its assigned action and slot)."""
    anim = obj.animation_data
    if anim is None or anim.action is None:
        return
    if not has_slotted_actions():
        yield from anim.action.fcurves
        return
    slot = anim.action_slot
    if slot is None:
        return
    for layer in anim.action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot)
            if bag is not None:
                yield from bag.fcurves


def copy_action_to(source: Any, target: Any) -> Any:
    """Give ``target`` its own copy of ``source``'s action, on the same slot; returns the copy."""
    anim = source.animation_data
    if anim is None or anim.action is None:
        return None
    action = anim.action.copy()
    target_anim = target.animation_data_create()
    target_anim.action = action
    if has_slotted_actions() and anim.action_slot is not None:
        slot = next((s for s in action.slots if s.identifier == anim.action_slot.identifier), None)
        if slot is None:
            raise RuntimeError(f"the copy of action '{anim.action.name}' lost its slot")
        target_anim.action_slot = slot
    return action
