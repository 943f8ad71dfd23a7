"""``features``, ``evaluate`` and ``train``: reproducing the paper's evaluation and training."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.commands.assets import ASSETS_HELP
from core.paths import path_arg

__all__ = ["register"]

_DATASETS = "3dpw, mpii3d, h36m (3D labels); posetrack, pennaction, insta (2D only)"


def _features(args: argparse.Namespace) -> int:
    from core.assets import require_assets, resolve_assets_dir
    from core.datasets.db import read_db
    from core.features_cache import build_features, file_digest
    from core.model.backbone import ResNet50Features
    from core.model.checkpoint import load_backbone_weights
    from core.model.load import BACKBONE_FILE, resolve_device

    db = read_db(Path(args.db), args.dataset)
    if args.backbone:
        weights = Path(args.backbone)
    else:
        assets = resolve_assets_dir(args.assets)
        require_assets(assets, [BACKBONE_FILE], validate=False)
        weights = assets / BACKBONE_FILE
    backbone = ResNet50Features()
    load_backbone_weights(backbone, weights)
    cache = build_features(db, Path(args.out), backbone=backbone, backbone_digest=file_digest(weights),
                           images=Path(args.images) if args.images else None, device=resolve_device(args.device),
                           crop_scale=args.crop_scale, chunk_frames=args.chunk_frames, batch_size=args.batch_size,
                           dtype=args.dtype, workers=args.workers, overwrite=args.overwrite,
                           progress=not args.no_progress)
    print(f"features of {len(cache)} rows of {db.path} in {args.out} ({cache.manifest.n_chunks} chunks, "
          f"{cache.manifest.dtype})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from core.assets import resolve_assets_dir
    from core.evaluation.run import run_evaluate

    run_evaluate(dataset=args.dataset, db_path=Path(args.db), features=Path(args.features),
                 assets=resolve_assets_dir(args.assets), checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                 out=Path(args.out), device=args.device, gt_joints=args.gt_joints, worst=args.worst, fps=args.fps,
                 mix_tcfm_across_batch=args.mix_tcfm_across_batch, windows_per_batch=args.windows_per_batch,
                 progress=not args.no_progress)
    return 0


def _train(args: argparse.Namespace) -> int:
    from core.assets import resolve_assets_dir
    from core.training.data import SourceSpec
    from core.training.loop import TrainConfig, train

    def spec(triple: list[str]) -> SourceSpec:
        return SourceSpec(triple[0], Path(triple[1]), Path(triple[2]))

    config = TrainConfig(
        out=Path(args.out), assets=resolve_assets_dir(args.assets), train=tuple(spec(t) for t in args.train or []),
        val=spec(args.val) if args.val else None, stage=args.stage, init=Path(args.init) if args.init else None,
        epochs=args.epochs, iters_per_epoch=args.iters_per_epoch,
        batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, ratio_2d=args.ratio_2d, stride=args.stride, seed=args.seed, device=args.device,
        mix_tcfm_across_batch=args.mix_tcfm_across_batch, trainable=args.trainable, crop_scale=args.crop_scale,
        workers=args.workers, log_every=args.log_every, max_steps=args.max_steps, resume=args.resume,
        progress=not args.no_progress)
    summary = train(config)
    where = Path(args.out)
    if summary.status == "paused":
        print(f"paused after --max-steps at epoch {summary.epochs + 1} ({summary.step} steps done); checkpoint in "
              f"{where / 'checkpoint.pth.tar'}: rerun with --resume to continue")
    else:
        print(f"finished {summary.epochs} epochs ({summary.step} steps); best performance {summary.best:.4g}; "
              f"checkpoints and logs in {where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="crop a dataset's frames and cache their backbone features (resumable)")
    p.add_argument("--dataset", required=True, help=_DATASETS)
    p.add_argument("--db", type=path_arg, required=True, metavar="FILE",
                   help="the dataset's preprocessed *_db.pt (VIBE/TCMR)")
    p.add_argument("--images", type=path_arg, metavar="DIR",
                   help="folder the db's image paths are below (default: as stored)")
    p.add_argument("--out", type=path_arg, required=True, metavar="DIR", help="feature cache folder (rerun to resume)")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--backbone", type=path_arg, metavar="FILE",
                   help="backbone weights (default: the asset folder's base_model.pt)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--crop-scale", type=float, default=1.2,
                   help="crop side as a multiple of max(box w, h) (default: %(default)s)")
    p.add_argument("--chunk-frames", type=int, default=256, help="rows per cache file (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="crops per backbone batch (default: %(default)s)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored precision")
    p.add_argument("--workers", type=int, default=4, help="image-decoding threads (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_features)

    p = sub.add_parser("evaluate", help="the paper's table row on a dataset, per-sequence CSV and a plot")
    p.add_argument("--dataset", required=True, help="3dpw, mpii3d or h36m")
    p.add_argument("--db", type=path_arg, required=True, metavar="FILE", help="the dataset's test *_db.pt")
    p.add_argument("--features", type=path_arg, required=True, metavar="DIR",
                   help="its feature cache ('features' command)")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--checkpoint", type=path_arg, metavar="FILE",
                   help="STAF weights (default: the asset folder's 3dpw_model_best.pth.tar)")
    p.add_argument("--out", type=path_arg, metavar="DIR", default="out/eval",
                   help="where reports go (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    p.add_argument("--gt-joints", choices=("db", "mesh"), default="db",
                   help="ground-truth joints: the db's joints3D, or J_regressor_h36m on the GT mesh")
    p.add_argument("--worst", type=int, default=4, help="sequences in the plot (default: %(default)s)")
    p.add_argument("--fps", type=float, help="frame rate for Accel in m/s^2 (default: the dataset's, if known)")
    p.add_argument("--mix-tcfm-across-batch", action="store_true",
                   help="the release's TCFM (windows mix across a batch) instead of the paper's per-window one")
    p.add_argument("--windows-per-batch", type=int, default=16, help="windows per STAF batch (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train STAF on cached features (stage 2) or the single-frame base model (1)")
    p.add_argument("--out", type=path_arg, required=True, metavar="DIR", help="run folder: checkpoints, logs, config")
    p.add_argument("--train", type=path_arg, nargs=3, action="append", metavar=("DATASET", "DB", "DIR"),
                   help=f"a training set: name ({_DATASETS}), *_db.pt, feature cache (stage 2) or image folder "
                        "(stage 1); repeat for several")
    p.add_argument("--val", type=path_arg, nargs=3, metavar=("DATASET", "DB", "DIR"),
                   help="validation set (its PA-MPJPE drives the learning rate and the best checkpoint)")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2, help="1: base model, 2: STAF (default)")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--init", type=path_arg, metavar="FILE",
                   help="start from: stage 2, a base model (its head) or a STAF checkpoint; stage 1, a backbone")
    p.add_argument("--epochs", type=int, default=45, help="default: %(default)s")
    p.add_argument("--iters-per-epoch", type=int, default=500, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=32,
                   help="windows (stage 2) or crops (stage 1) per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--patience", type=int, default=5,
                   help="epochs without improvement before the learning rate drops x0.1 (default: %(default)s)")
    p.add_argument("--ratio-2d", type=float, default=0.6,
                   help="share of each batch from 2D-only datasets (default: %(default)s)")
    p.add_argument("--stride", type=int, default=1, help="rows between training windows (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--mix-tcfm-across-batch", action="store_true",
                   help="train with the release's TCFM, whose windows mix across the batch")
    p.add_argument("--trainable", choices=("all", "regressors"), default="all",
                   help="what is trained: everything (default, as the release) or only the regressors")
    p.add_argument("--crop-scale", type=float, default=1.2, help="stage 1: crop side / max(box w, h)")
    p.add_argument("--workers", type=int, default=4, help="stage 1: image-decoding threads")
    p.add_argument("--log-every", type=int, default=10, help="steps between rows of train_steps.csv")
    p.add_argument("--max-steps", type=int, help="pause after this many steps (checkpoint saved; --resume goes on)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)
