"""``assets add`` and ``doctor --json``: downloaded files are checked before any is copied, zips
are read safely, and a valid file in the asset folder is never replaced by a bad one."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from core.asset_import import ZipLimits, add_assets, doctor_report
from core.cli import main
from core.errors import BadInput, OutputError

SMALL = ("J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz", "mesh_downsampling.npz")


class _Touch:
    """Unpickling this creates ``path``: the proof that a reader ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _folder(root: Path, assets: Path, names: tuple[str, ...] = SMALL, sub: str = "") -> Path:
    """A 'download' holding copies of ``names`` from the stand-in folder (under ``sub``), and a readme."""
    where = root / sub if sub else root
    where.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(assets / name, where / name)
    (root / "README.txt").write_text("not an asset\n")
    return root


def _zip(path: Path, members: dict[str, bytes], *, links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _states(report) -> dict[str, str]:
    return {v.where: v.state for v in report.files}


def test_a_valid_folder_is_copied_and_the_doctor_sees_it(standin_assets: Path, tmp_path: Path) -> None:
    source = _folder(tmp_path / "download", standin_assets, sub="data/base_data")
    target = tmp_path / "assets"
    report = add_assets(source, target)
    assert report.ok and report.exit_code == 0, report.message
    assert {v.name: v.action for v in report.files if v.state == "valid"} == dict.fromkeys(SMALL, "added")
    assert _states(report)["README.txt"] == "skipped"
    assert sorted(p.name for p in target.iterdir()) == sorted(SMALL)  # no staging folder left behind
    for name in SMALL:
        assert (target / name).read_bytes() == (standin_assets / name).read_bytes()
    again = add_assets(source, target)
    assert again.ok and {v.action for v in again.files if v.state == "valid"} == {"unchanged"}
    found = {a["name"]: a["state"] for a in doctor_report(target)["assets"]}
    assert all(found[name] == "found" for name in SMALL) and found["base_model.pt"] == "missing"


def test_the_whole_stand_in_folder_makes_a_ready_folder(standin_assets: Path, tmp_path: Path) -> None:
    report = add_assets(standin_assets, tmp_path / "assets")
    assert report.ok, report.message
    verdict = doctor_report(tmp_path / "assets")
    assert verdict["ready"] and verdict["exit_code"] == 0 and not verdict["standins"]


def test_one_tampered_file_and_nothing_is_copied(standin_assets: Path, tmp_path: Path) -> None:
    source = _folder(tmp_path / "download", standin_assets)
    data = (source / "mesh_downsampling.npz").read_bytes()
    (source / "mesh_downsampling.npz").write_bytes(data[: len(data) // 2])  # truncated download
    (source / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": _Touch(tmp_path / "EXECUTED")}))
    target = tmp_path / "assets"
    report = add_assets(source, target)
    assert not report.ok and report.exit_code == 4
    states = _states(report)
    assert states["mesh_downsampling.npz"] == "invalid" and states["SMPL_NEUTRAL.pkl"] == "invalid"
    assert states["J_regressor_extra.npy"] == "valid"
    assert "mesh_downsampling.npz" in report.message and "SMPL_NEUTRAL.pkl" in report.message
    assert "\n" not in report.message and ".staf-add-" not in report.message
    assert not target.exists(), "the folder made for the import is removed again"
    assert not (tmp_path / "EXECUTED").exists(), "a pickle ran code"


def test_an_existing_valid_file_is_never_replaced_by_an_invalid_one(standin_assets: Path, tmp_path: Path) -> None:
    target = _folder(tmp_path / "assets", standin_assets, names=("J_regressor_extra.npy",))
    before = _snapshot(target)
    source = _folder(tmp_path / "download", standin_assets)
    (source / "J_regressor_extra.npy").write_bytes(b"\x93NUMPY tampered")
    report = add_assets(source, target)
    assert not report.ok and _states(report)["J_regressor_extra.npy"] == "invalid"
    assert _snapshot(target) == before


def test_a_zip_from_the_release_is_read_without_extracting(standin_assets: Path, tmp_path: Path) -> None:
    members = {f"staf/data/base_data/{name}": (standin_assets / name).read_bytes() for name in SMALL}
    members["staf/LICENSE"] = b"terms"
    archive = _zip(tmp_path / "base_data.zip", members)
    report = add_assets(archive, tmp_path / "assets")
    assert report.ok, report.message
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == sorted(SMALL)
    assert not (tmp_path / "staf").exists()


@pytest.mark.parametrize("member", ["../../evil.npy", "/tmp/J_regressor_extra.npy", "a/../../J_regressor_h36m.npy",
                                    "C:/J_regressor_extra.npy"])
def test_a_zip_with_a_path_out_of_its_folder_is_refused(standin_assets: Path, tmp_path: Path, member: str) -> None:
    members = {name: (standin_assets / name).read_bytes() for name in SMALL}
    members[member] = b"payload"
    archive = _zip(tmp_path / "evil.zip", members)
    work = tmp_path / "work"
    work.mkdir()
    before = _snapshot(tmp_path)
    report = add_assets(archive, work / "assets")
    assert not report.ok and report.exit_code == 4
    assert _states(report)[member] == "unsafe" and member in report.message
    assert all(v.action == "" for v in report.files)
    assert _snapshot(tmp_path) == before and not Path("/tmp/J_regressor_extra.npy").exists()


def test_a_zip_with_a_link_is_refused(standin_assets: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "links.zip", {"smpl_mean_params.npz": (standin_assets / "smpl_mean_params.npz")
                                            .read_bytes()}, links=("J_regressor_extra.npy",))
    report = add_assets(archive, tmp_path / "assets")
    assert not report.ok and "symbolic link" in report.message
    assert not (tmp_path / "assets").exists()


def test_zip_size_limits(standin_assets: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"J_regressor_h36m.npy": (standin_assets / "J_regressor_h36m.npy")
                                          .read_bytes(), "mesh_downsampling.npz": b"\0" * (4 << 20)})
    report = add_assets(archive, tmp_path / "assets", limits=ZipLimits(member_bytes=1 << 20))
    assert not report.ok and _states(report)["mesh_downsampling.npz"] == "unsafe"
    report = add_assets(archive, tmp_path / "assets", limits=ZipLimits(ratio=50))
    assert not report.ok and "zip bomb" in report.message
    with pytest.raises(BadInput, match="more than"):
        add_assets(archive, tmp_path / "assets", limits=ZipLimits(total_bytes=1 << 19))
    assert not (tmp_path / "assets").exists()


def test_the_same_name_twice_with_different_contents(standin_assets: Path, tmp_path: Path) -> None:
    source = _folder(tmp_path / "download", standin_assets, names=("smpl_mean_params.npz",), sub="a")
    _folder(source, standin_assets, names=("smpl_mean_params.npz",), sub="b")
    _folder(source, standin_assets, names=("J_regressor_extra.npy",), sub="c")
    assert add_assets(source, tmp_path / "same").ok  # identical copies are one file
    shutil.copyfile(standin_assets / "J_regressor_extra.npy", source / "b" / "smpl_mean_params.npz")
    report = add_assets(source, tmp_path / "assets")
    assert not report.ok and "2 times with different contents" in report.message


def test_unusable_sources_and_folders(standin_assets: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        add_assets(tmp_path / "nope.zip", tmp_path / "assets")
    (tmp_path / "notes.zip").write_text("not a zip")
    with pytest.raises(BadInput, match="neither a folder nor a"):
        add_assets(tmp_path / "notes.zip", tmp_path / "assets")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(BadInput, match="none of the asset files"):
        add_assets(tmp_path / "empty", tmp_path / "assets")
    source = _folder(tmp_path / "download", standin_assets)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="cannot write into the asset folder"):
        add_assets(source, tmp_path / "a_file" / "assets")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError):
            add_assets(source, locked)


def test_cli_add_and_doctor_json(standin_assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = _folder(tmp_path / "download", standin_assets)
    target = tmp_path / "assets"
    assert main(["assets", "add", str(source), "--assets", str(target)]) == 0
    out = capsys.readouterr().out
    assert "J_regressor_extra.npy  valid" in out and "4 files copied" in out
    assert main(["doctor", "--json", "--assets", str(target)]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["folder"] == str(target) and not report["ready"]
    assert {a["name"]: a["state"] for a in report["assets"]}["smpl_mean_params.npz"] == "found"
    assert all({"name", "state", "detail", "source", "required"} <= set(a) for a in report["assets"])
    (source / "smpl_mean_params.npz").write_bytes(b"PK\x03\x04 broken")
    assert main(["assets", "add", str(source), "--assets", str(target), "--json"]) == 4
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert not data["ok"] and {f["where"]: f["state"] for f in data["files"]}["smpl_mean_params.npz"] == "invalid"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: nothing copied") and "smpl_mean_params.npz" in lines[0]
    assert main(["assets", "add", str(tmp_path / "nowhere"), "--assets", str(target)]) == 5
    assert capsys.readouterr().err.startswith("error: ")
