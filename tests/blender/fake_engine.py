"""A stand-in for ``python -m core reconstruct`` that follows the engine's command-line contract.

Used by the add-on's tests instead of the real engine (which needs video, detection and weights).
It parses the engine's options (an unknown option exits 2, as argparse does), checks the video
exists (exit 6 otherwise), prints ``--progress json`` lines, then copies a prepared motion file to
``-o`` atomically. Behaviour comes from environment variables:

- ``FAKE_ENGINE_MOTION``: the motion file to "produce": copied to the output path as it is with
  ``--person all`` and no ``--max-people``, else with only the people asked for. As the engine:
  ``--person`` is a string, ``all``, an id or ids ``0,2`` (track ids, by prominence: the lowest
  ids are kept by ``--max-people N``, an int, which comes first); bad ``--person`` text, N < 1 and
  an id the clip lacks each exit 5 with one ``error:`` line (the last naming the ids there are).
- ``FAKE_ENGINE_MODE``: ``ok`` (default), ``error3``/``error4``/``error5`` (one ``error:`` line,
  that exit code), ``crash`` (a traceback, exit 1), ``no-output`` (exit 0 writing nothing),
  ``stubborn`` (ignores SIGINT/SIGTERM: only SIGKILL ends it).
- ``FAKE_ENGINE_STEPS`` (default 4) progress lines per stage, ``FAKE_ENGINE_DELAY`` seconds each.
- ``FAKE_ENGINE_LOG``: a file where the received arguments are written as JSON.

Run directly (``python fake_engine.py reconstruct ...``) or as ``python -m core`` through a
package made by :func:`make_fake_engine_package`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

__all__ = ["main", "make_fake_engine_package"]

STAGES = ("decode", "detect", "backbone", "staf")


def make_fake_engine_package(folder: Path) -> Path:
    """Write packages ``core`` (its ``__main__`` runs this script) and an empty ``torch`` into
    ``folder``: put it on PYTHONPATH and ``python -m core reconstruct ...`` runs the fake."""
    folder = Path(folder)
    (folder / "core").mkdir(parents=True, exist_ok=True)
    (folder / "core" / "__init__.py").write_text('"""Fake engine package for tests."""\n')
    (folder / "core" / "cli.py").write_text('"""Fake engine CLI module (found by the interpreter check)."""\n')
    (folder / "core" / "__main__.py").write_text(
        "import runpy\n"
        f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')\n"
    )
    (folder / "torch").mkdir(exist_ok=True)
    (folder / "torch" / "__init__.py").write_text('"""Fake torch: only has to be found."""\n')
    return folder


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _bad_people_options(person: str, max_people: int | None) -> str | None:
    """The engine's checks of ``--person`` ('all', one id or ids separated by commas) and
    ``--max-people`` (at least 1): an ``error:`` line (exit 5) or None."""
    if person.strip().lower() != "all" and not re.fullmatch(r"\d+(\s*,\s*\d+)*", person.strip()):
        return f"error: --person '{person}': give 'all', one id (0) or ids separated by commas (0,2)"
    if max_people is not None and max_people < 1:
        return f"error: --max-people {max_people}: give at least 1 (or leave it out for everybody)"
    return None


def _motion_format():
    """core/motion_format.py of this checkout, by path: ``core`` is this fake's package here, so
    the real one is imported under another package name (its modules import each other relatively)."""
    import importlib
    import importlib.util

    core = Path(__file__).resolve().parents[2] / "core"
    spec = importlib.util.spec_from_file_location("_fake_engine_core", core / "__init__.py",
                                                  submodule_search_locations=[str(core)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package  # dataclasses look their module up while the class is made
    spec.loader.exec_module(package)
    return importlib.import_module("_fake_engine_core.motion_format")


def _produce(source: Path, tmp: Path, person: str, max_people: int | None) -> str | None:
    """Write the motion of ``source`` to ``tmp`` with the people asked for; returns an error line
    (and writes nothing) for an id the clip does not have."""
    if person.strip().lower() == "all" and max_people is None:
        shutil.copyfile(source, tmp)
        return None
    import dataclasses

    import numpy as np

    fmt = _motion_format()
    motion = fmt.read_motion(source)
    people = sorted(motion.people, key=lambda p: p.person_id)[:max_people]
    present = [p.person_id for p in people]
    if person.strip().lower() != "all":
        wanted = list(dict.fromkeys(int(part) for part in person.split(",")))
        missing = [pid for pid in wanted if pid not in present]
        if missing:
            return (f"error: no person {', '.join(map(str, missing))} in this clip "
                    f"(ids there are: {', '.join(map(str, present)) or 'none'})")
        people = [p for p in people if p.person_id in wanted]
    with open(tmp, "wb") as fh:
        np.savez(fh, **fmt.motion_arrays(dataclasses.replace(motion, people=tuple(people))))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reconstruct")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--progress", choices=("auto", "bar", "json"), default="auto")
    p.add_argument("--assets")
    p.add_argument("--device", default="auto")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--person", default="all")  # checked after parsing, as the engine does (exit 5)
    p.add_argument("--max-people", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    if os.environ.get("FAKE_ENGINE_LOG"):
        Path(os.environ["FAKE_ENGINE_LOG"]).write_text(json.dumps(sys.argv[1:] if argv is None else argv))
    mode = os.environ.get("FAKE_ENGINE_MODE", "ok")
    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, _stop)
    steps = int(os.environ.get("FAKE_ENGINE_STEPS", "4"))
    delay = float(os.environ.get("FAKE_ENGINE_DELAY", "0"))
    out = Path(args.output)
    try:
        if not Path(args.video).is_file():
            print(f"error: {args.video}: no such file", file=sys.stderr)
            return 5
        if out.exists() and not args.overwrite:
            print(f"error: {out} exists: pass --overwrite", file=sys.stderr)
            return 6
        problem = _bad_people_options(args.person, args.max_people)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 5
        print("fake engine starting", flush=True)  # not JSON: readers must skip it
        for stage in STAGES:
            for done in range(1, steps + 1):
                line = {"stage": stage, "done": done, "total": steps, "fps": 30.0, "eta": float(steps - done)}
                print(json.dumps(line), flush=True)
                time.sleep(delay)
            if mode.startswith("error") and stage == "detect":
                print(f"error: fake failure with code {mode[5:]}", file=sys.stderr, flush=True)
                return int(mode[5:])
            if mode == "crash" and stage == "detect":
                raise RuntimeError("fake crash")
        if mode == "no-output":
            return 0
        tmp = out.with_name(f".{out.name}.tmp")
        problem = _produce(Path(os.environ["FAKE_ENGINE_MOTION"]), tmp, args.person, args.max_people)
        if problem is not None:
            print(problem, file=sys.stderr, flush=True)
            return 5
        os.replace(tmp, out)
        return 0
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
