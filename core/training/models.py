"""What is trained: STAF over frozen features (stage 2) and the single-frame base model (stage 1).

The base model is the backbone plus STAF's decoder, point-feature extractors and regressors used
frame by frame -- stage 0 samples the fixed grid and regresses from the mean parameters, stages
1 and 2 sample where the previous estimate's mesh projects -- without TCFM and SAFM. It is built
from the same :class:`~core.model.staf.Staf` blocks, so its head weights can start stage 2.
Its checkpoint is the release's ``base_model.pt`` layout: ``{'model': {'feature_extractor.*': ...,
'deconv_layers.*': ..., 'maf_extractor.*': ..., 'regressor.*': ...}, ...}``, which
:func:`core.model.checkpoint.load_backbone_weights` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from core.errors import CheckpointMismatch
from core.model.backbone import ResNet50Features
from core.model.checkpoint import BACKBONE_PREFIX, BACKBONE_STATE_KEY, STAF_STATE_KEY, read_torch_file
from core.model.staf import Body, Staf, StafOutput

__all__ = ["HEAD_PREFIXES", "SingleFrameModel", "init_staf", "load_base_head", "staf_head_state"]

#: Parts of STAF that the single-frame base model shares with it.
HEAD_PREFIXES = ("deconv_layers.", "maf_extractor.", "regressor.")
# SPIN/PyMAF start the regressors' output layers small (Xavier, gain 0.01).
_HEAD_GAIN = 0.01


def init_staf(assets: Path, *, mix_tcfm_across_batch: bool = False) -> Staf:
    """A fresh STAF: mean parameters and mesh downsampling from ``assets``, small output layers."""
    from core.smpl import load_downsampling, load_mean_params

    mean = load_mean_params(Path(assets) / "smpl_mean_params.npz")
    dmap = torch.from_numpy(load_downsampling(Path(assets) / "mesh_downsampling.npz"))
    staf = Staf(mix_tcfm_across_batch=mix_tcfm_across_batch)
    with torch.no_grad():
        for reg in staf.regressor:
            reg.init_pose.copy_(torch.from_numpy(mean.pose).reshape(1, -1))
            reg.init_shape.copy_(torch.from_numpy(mean.shape).reshape(1, -1))
            reg.init_cam.copy_(torch.from_numpy(mean.cam).reshape(1, -1))
            for head in (reg.decpose, reg.decshape, reg.deccam):
                nn.init.xavier_uniform_(head.weight, gain=_HEAD_GAIN)
        for extractor in staf.maf_extractor:
            extractor.Dmap.copy_(dmap)
    return staf


def staf_head_state(staf: Staf) -> dict[str, torch.Tensor]:
    """The entries of a STAF state dict that the base model shares (decoder, extractors, regressors)."""
    return {k: v for k, v in staf.state_dict().items() if k.startswith(HEAD_PREFIXES)}


def load_base_head(staf: Staf, path: Path) -> None:
    """Start ``staf``'s shared parts from a base model (``{'model': ...}``) or a STAF checkpoint
    (``{'gen_state_dict': ...}``), strictly: every shared tensor must be there with its shape.
    TCFM and SAFM keep their initial weights when the file is a base model."""
    path = Path(path)
    blob = read_torch_file(path)
    if isinstance(blob, Mapping) and isinstance(blob.get(STAF_STATE_KEY), Mapping):
        from core.model.checkpoint import load_staf_weights

        load_staf_weights(staf, path)
        return
    if not isinstance(blob, Mapping) or not isinstance(blob.get(BACKBONE_STATE_KEY), Mapping):
        raise CheckpointMismatch(f"{path}: neither a base model ('{BACKBONE_STATE_KEY}') nor a STAF checkpoint "
                                 f"('{STAF_STATE_KEY}')")
    state = {k.removeprefix("module."): v for k, v in blob[BACKBONE_STATE_KEY].items()}
    expected = staf_head_state(staf)
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected
             if k in state and (not torch.is_tensor(state[k]) or state[k].shape != expected[k].shape)]
    if missing or wrong:
        detail = (f"{len(missing)} missing, e.g. {', '.join(missing[:3])}" if missing
                  else f"{len(wrong)} of other shape, e.g. {', '.join(wrong[:3])}")
        raise CheckpointMismatch(f"{path}: its head does not fit STAF's decoder/extractors/regressors ({detail})")
    staf.load_state_dict({**staf.state_dict(), **{k: state[k] for k in expected}}, strict=True)


class SingleFrameModel(nn.Module):
    """Backbone + STAF's decoder, extractors and regressors, one image at a time (stage 1)."""

    def __init__(self, head: Staf) -> None:
        super().__init__()
        self.feature_extractor = ResNet50Features()
        # The temporal modules have no part in the single-frame model.
        del head.tcfm, head.safm
        self.head = head

    def forward(self, images: torch.Tensor, body: Body) -> StafOutput:
        """Crops (B, 3, 224, 224), ImageNet-normalised -> SMPL of each."""
        net = self.head
        map14 = net.decode(0, self.feature_extractor(images))
        est0 = net.regressor[0](net.grid_features(map14), net.regressor[0].initial(images.shape[0]))
        map28 = net.decode(1, map14)
        est1 = net.regressor[1](net.maf_extractor[1].on_mesh(map28, net.posed_vertices(body, est0), est0.cam), est0)
        map56 = net.decode(2, map28)
        est2 = net.regressor[2](net.maf_extractor[2].on_mesh(map56, net.posed_vertices(body, est1), est1.cam), est1)
        return net.finish(body, est2)

    def base_state(self) -> dict[str, torch.Tensor]:
        """The release's base-model layout: ``feature_extractor.*`` then the head's keys."""
        state = {BACKBONE_PREFIX + k: v for k, v in self.feature_extractor.state_dict().items()}
        state.update(self.head.state_dict())
        return {k: v.detach().cpu() for k, v in state.items()}

    def load_base_state(self, state: Mapping[str, torch.Tensor], path: Path) -> None:
        """Inverse of :meth:`base_state`, strictly (CheckpointMismatch naming ``path``)."""
        expected = self.base_state()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [k for k in expected
                 if k in state and (not torch.is_tensor(state[k]) or state[k].shape != expected[k].shape)]
        if missing or unexpected or wrong:
            example = ", ".join((missing or unexpected or wrong)[:3])
            raise CheckpointMismatch(f"{path}: not a base model of this layout ({len(missing)} missing, "
                                     f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped, e.g. {example})")
        self.feature_extractor.load_state_dict(
            {k[len(BACKBONE_PREFIX):]: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)})
        self.head.load_state_dict({k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX)})
