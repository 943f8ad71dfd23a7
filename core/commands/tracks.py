"""``tracks``: list the people in a clip (and a contact sheet of each) before the expensive pass."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.commands.reconstruct import add_people_args
from core.paths import path_arg

__all__ = ["register"]


def _tracks(args: argparse.Namespace) -> int:
    from core.cancel import cancellable
    from core.people.stage import find_people
    from core.progress import Progress
    from core.reconstruct import ReconstructOptions, check_output, people_options, resolve_range, validate_options
    from core.video import probe_video

    opts = ReconstructOptions(start=args.start, end=args.end, detect_every=args.detect_every,
                              max_gap=args.max_gap, smooth=args.smooth, min_track=args.min_track,
                              progress=args.progress)
    validate_options(opts)
    sheet = Path(args.sheet) if args.sheet else None
    if sheet is not None:
        check_output(sheet, args.overwrite, ".png", "the contact sheet")
    with cancellable():
        info = probe_video(Path(args.video))
        start, end = resolve_range(info, opts.start, opts.end)
        progress = Progress("none" if args.json else opts.progress)
        try:
            found = find_people(info, start, end, people_options(opts), progress)
        finally:
            progress.close()
        if sheet is not None:
            from core.people.sheet import write_track_sheet

            write_track_sheet(sheet, found, info, start)
    rows = [{"id": p.person_id, "first_frame": int(found.frame_index[p.first]),
             "last_frame": int(found.frame_index[p.first + len(p.track.box) - 1]), "frames_seen": p.frames_seen,
             "share_of_frame": round(p.share, 4)} for p in found.people]
    if args.json:
        print(json.dumps({"video": str(args.video), "frames": len(found.frame_index), "people": rows}))
        return 0
    if not rows:
        print(f"{args.video}: nobody found in {len(found.frame_index)} frames")
        return 0
    print(f"{args.video}: {len(rows)} {'person' if len(rows) == 1 else 'people'} in {len(found.frame_index)} frames")
    print(f"{'id':>3}  {'first':>6}  {'last':>6}  {'frames':>6}  share of frame")
    for r in rows:
        print(f"{r['id']:>3}  {r['first_frame']:>6}  {r['last_frame']:>6}  {r['frames_seen']:>6}  "
              f"{100 * r['share_of_frame']:.1f} %")
    if sheet is not None:
        print(f"contact sheet: {sheet}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tracks", help="list the people in a clip (ids for --person), with a contact sheet")
    p.add_argument("video", type=path_arg, help="the clip")
    p.add_argument("--start", help="first frame: a frame number (120) or seconds (4s); default: the start")
    p.add_argument("--end", help="end (exclusive): a frame number or seconds; default: the end")
    add_people_args(p)
    p.add_argument("--sheet", type=path_arg, metavar="OUT.png",
                   help="also write a contact sheet: a row of crops per person")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--progress", choices=("auto", "bar", "none"), default="auto", help="progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace an existing contact sheet")
    p.set_defaults(func=_tracks)
