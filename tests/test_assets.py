"""The asset folder: where it is, checking each file for real, require_assets and the doctor."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from core.assets import (
    ASSETS,
    ASSETS_ENV,
    AssetSpec,
    check_assets,
    default_assets_dir,
    require_assets,
    resolve_assets_dir,
)
from core.doctor import run_doctor
from core.errors import EXIT_ASSET_INVALID, EXIT_ASSET_MISSING, AssetInvalid, AssetMissing, CheckpointMismatch

TORCH_FILES = ("3dpw_model_best.pth.tar", "base_model.pt")
REQUIRED = {
    "3dpw_model_best.pth.tar",
    "base_model.pt",
    "SMPL_NEUTRAL.pkl",
    "J_regressor_extra.npy",
    "J_regressor_h36m.npy",
    "smpl_mean_params.npz",
    "mesh_downsampling.npz",
}


# --------------------------------------------------------------------------------------------
# Where the folder is


def test_resolve_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "from_env"))
    assert resolve_assets_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_assets_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert resolve_assets_dir(None) == tmp_path / "from_env"
    monkeypatch.delenv(ASSETS_ENV)
    assert resolve_assets_dir(None) == tmp_path / "xdg" / "staf"
    monkeypatch.setenv(ASSETS_ENV, "")
    assert resolve_assets_dir("") == tmp_path / "xdg" / "staf"


def test_resolve_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_assets_dir("~/models") == tmp_path / "models"
    monkeypatch.setenv(ASSETS_ENV, "~/env_models")
    assert resolve_assets_dir(None) == tmp_path / "env_models"


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_DATA_HOME": "/data/xdg"}, "/data/xdg/staf"),
        ("linux", {"XDG_DATA_HOME": "relative/ignored"}, "HOME/.local/share/staf"),
        ("linux", {}, "HOME/.local/share/staf"),
        ("darwin", {"XDG_DATA_HOME": "/data/xdg"}, "HOME/Library/Application Support/staf"),
        ("win32", {"APPDATA": "/users/me/AppData/Roaming"}, "/users/me/AppData/Roaming/staf"),
    ],
)
def test_default_dir_per_platform(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, env: dict[str, str], expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_DATA_HOME", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_assets_dir() == Path(expected.replace("HOME", str(tmp_path)))


# --------------------------------------------------------------------------------------------
# The specs


def test_specs_describe_the_release_files() -> None:
    names = {spec.name for spec in ASSETS}
    assert REQUIRED <= names
    assert {spec.name for spec in ASSETS if spec.required} == REQUIRED
    assert {"SMPL_MALE.pkl", "SMPL_FEMALE.pkl"} <= names - REQUIRED
    by_name = {spec.name: spec for spec in ASSETS}
    assert "SMPL_NEUTRAL.npz" in by_name["SMPL_NEUTRAL.pkl"].alternatives
    assert "https://smpl.is.tue.mpg.de" in by_name["SMPL_NEUTRAL.pkl"].source
    assert "https://smplify.is.tue.mpg.de" in by_name["SMPL_NEUTRAL.pkl"].source
    for name in REQUIRED - {"SMPL_NEUTRAL.pkl"}:
        assert "STAF" in by_name[name].source and "data/base_data" in by_name[name].source
    spec = by_name["base_model.pt"]
    assert isinstance(spec, AssetSpec) and callable(spec.check)
    with pytest.raises(AttributeError):
        spec.required = False  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Checking real-format stand-ins


@pytest.fixture(scope="module")
def smpl_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in SMPL/regressor/mean/downsampling files in the real formats (no torch files)."""
    smpl_files = pytest.importorskip("core.standins.smpl_files")
    folder = tmp_path_factory.mktemp("smpl_assets")
    smpl_files.write_smpl_assets(folder, seed=0)
    return folder


def _clone(src: Path, dst: Path, *, skip: Iterable[str] = ()) -> Path:
    """A folder of links to ``src``'s files (cheap), minus ``skip``."""
    dst.mkdir(parents=True, exist_ok=True)
    skipped = set(skip)
    for path in src.iterdir():
        if path.is_file() and path.name not in skipped:
            (dst / path.name).symlink_to(path)
    return dst


@pytest.fixture
def fake_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the checkpoint inspectors (another module's job) by recorders, to test the wiring."""
    checkpoint = pytest.importorskip("core.model.checkpoint")
    seen: list[Path] = []

    def inspector(summary: str):
        def inspect(path: Path) -> str:
            seen.append(Path(path))
            if Path(path).read_bytes() == b"bad":
                raise CheckpointMismatch(f"{path}: not a STAF checkpoint: 3 missing key(s)")
            return summary

        return inspect

    monkeypatch.setattr(checkpoint, "inspect_staf_checkpoint", inspector("STAF weights, 114 network tensors"))
    monkeypatch.setattr(checkpoint, "inspect_backbone_checkpoint", inspector("ResNet-50 weights, 320 tensors"))
    return seen


def _with_torch_files(folder: Path, content: bytes = b"weights") -> Path:
    for name in TORCH_FILES:
        (folder / name).write_bytes(content)
    return folder


def test_check_assets_on_smpl_standins(smpl_assets: Path) -> None:
    statuses = {s.spec.name: s for s in check_assets(smpl_assets)}
    assert set(statuses) == {spec.name for spec in ASSETS}
    for name, status in statuses.items():
        expected = "missing" if name in TORCH_FILES else "found"
        assert status.state == expected, (name, status.detail)
    assert statuses["J_regressor_h36m.npy"].detail == "joint regressor (17, 6890)"
    assert statuses["mesh_downsampling.npz"].detail == "D[1] @ D[0]: (431, 6890)"
    assert "6890 vertices" in statuses["SMPL_NEUTRAL.pkl"].detail


def test_torch_files_go_to_the_checkpoint_inspectors(
    smpl_assets: Path, tmp_path: Path, fake_checkpoints: list[Path]
) -> None:
    folder = _with_torch_files(_clone(smpl_assets, tmp_path / "a"))
    statuses = {s.spec.name: s for s in check_assets(folder)}
    assert all(s.state == "found" for s in statuses.values())
    assert statuses["3dpw_model_best.pth.tar"].detail == "STAF weights, 114 network tensors"
    assert sorted(p.name for p in fake_checkpoints) == sorted(TORCH_FILES)
    (folder / "3dpw_model_best.pth.tar").write_bytes(b"bad")
    status = next(s for s in check_assets(folder) if s.spec.name == "3dpw_model_best.pth.tar")
    assert status.state == "invalid" and "3 missing key(s)" in status.detail


def test_smpl_as_npz_is_accepted(smpl_assets: Path, tmp_path: Path) -> None:
    from core.smpl import load_smpl_data

    folder = _clone(smpl_assets, tmp_path / "a", skip=["SMPL_NEUTRAL.pkl"])
    data = load_smpl_data(smpl_assets / "SMPL_NEUTRAL.pkl")
    np.savez(
        folder / "SMPL_NEUTRAL.npz",
        v_template=data.v_template,
        f=data.faces,
        shapedirs=data.shapedirs,
        posedirs=data.posedirs,
        J_regressor=data.j_regressor,
        weights=data.lbs_weights,
        kintree_table=np.stack([data.parents, np.arange(24)]),
    )
    status = next(s for s in check_assets(folder) if s.spec.name == "SMPL_NEUTRAL.pkl")
    assert status.state == "found" and status.path.name == "SMPL_NEUTRAL.npz"
    require_assets(folder, ["SMPL_NEUTRAL.pkl"])
    require_assets(folder, ["SMPL_NEUTRAL.npz"])


def test_invalid_file_is_reported(smpl_assets: Path, tmp_path: Path) -> None:
    folder = _clone(smpl_assets, tmp_path / "a", skip=["J_regressor_h36m.npy", "SMPL_MALE.pkl"])
    np.save(folder / "J_regressor_h36m.npy", np.zeros((16, 6890)))
    (folder / "SMPL_MALE.pkl").write_bytes(b"")
    statuses = {s.spec.name: s for s in check_assets(folder)}
    assert statuses["J_regressor_h36m.npy"].state == "invalid"
    assert "(16, 6890), expected (17, 6890)" in statuses["J_regressor_h36m.npy"].detail
    assert statuses["SMPL_MALE.pkl"].state == "invalid" and "empty" in statuses["SMPL_MALE.pkl"].detail
    with pytest.raises(AssetInvalid, match=r"J_regressor_h36m\.npy"):
        require_assets(folder, ["J_regressor_h36m.npy"])


def test_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    statuses = check_assets(folder)
    assert [s.state for s in statuses] == ["missing"] * len(ASSETS)
    with pytest.raises(AssetMissing) as err:
        require_assets(folder, ["SMPL_NEUTRAL.pkl"])
    text = str(err.value)
    assert str(folder) in text and "--assets DIR" in text and ASSETS_ENV in text and "\n" not in text


def test_require_assets_names_missing_files_and_sources(smpl_assets: Path, tmp_path: Path) -> None:
    folder = _clone(smpl_assets, tmp_path / "a", skip=["mesh_downsampling.npz"])
    with pytest.raises(AssetMissing) as err:
        require_assets(folder, ["SMPL_NEUTRAL.pkl", "mesh_downsampling.npz", "base_model.pt"])
    text = str(err.value)
    assert "2 asset files are missing" in text
    assert "mesh_downsampling.npz (from the STAF authors' public release" in text
    assert "base_model.pt" in text and "SMPL_NEUTRAL" not in text
    require_assets(folder, ["J_regressor_extra.npy", "SMPL_NEUTRAL.pkl"])
    with pytest.raises(ValueError, match="unknown asset"):
        require_assets(folder, ["nothing.bin"])


def test_require_assets_without_validation_only_looks(tmp_path: Path) -> None:
    (tmp_path / "J_regressor_h36m.npy").write_bytes(b"garbage")
    require_assets(tmp_path, ["J_regressor_h36m.npy"], validate=False)
    with pytest.raises(AssetInvalid):
        require_assets(tmp_path, ["J_regressor_h36m.npy"])


# --------------------------------------------------------------------------------------------
# The doctor


def _doctor(folder: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(folder, out=out)
    return code, out.getvalue()


def _line_for(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(name))


def test_doctor_all_found(smpl_assets: Path, tmp_path: Path, fake_checkpoints: list[Path]) -> None:
    folder = _with_torch_files(_clone(smpl_assets, tmp_path / "a", skip=["SMPL_MALE.pkl", "SMPL_FEMALE.pkl"]))
    code, text = _doctor(folder)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == f"Asset folder: {folder}"
    for name in REQUIRED:
        assert " found" in _line_for(text, name)
    assert "missing (optional)" in _line_for(text, "SMPL_MALE.pkl")
    assert lines[-1].startswith("Ready: all 7 required files found and valid")


def test_doctor_missing(smpl_assets: Path, tmp_path: Path) -> None:
    folder = _clone(smpl_assets, tmp_path / "a", skip=["mesh_downsampling.npz", "SMPL_MALE.pkl", "SMPL_FEMALE.pkl"])
    code, text = _doctor(folder)
    assert code == EXIT_ASSET_MISSING == 3
    line = _line_for(text, "mesh_downsampling.npz")
    assert "missing" in line and "get it from the STAF authors' public release" in line
    assert "missing" in _line_for(text, "base_model.pt")
    assert " found" in _line_for(text, "SMPL_NEUTRAL.pkl")
    assert text.splitlines()[-1] == "Not ready: 3 required files missing."


def test_doctor_invalid_wins(smpl_assets: Path, tmp_path: Path) -> None:
    folder = _clone(smpl_assets, tmp_path / "a", skip=["smpl_mean_params.npz", "SMPL_MALE.pkl", "SMPL_FEMALE.pkl"])
    (folder / "smpl_mean_params.npz").write_text("<html>404</html>")
    code, text = _doctor(folder)
    assert code == EXIT_ASSET_INVALID == 4
    line = _line_for(text, "smpl_mean_params.npz")
    assert line.split()[1] == "invalid" and "(not a readable numpy file" in line and "get it from" in line
    assert str(folder) not in line  # the name leads the line; the path is not repeated
    assert text.splitlines()[-1] == "Not ready: 2 required files missing, 1 file invalid."


def test_doctor_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    code, text = _doctor(folder)
    assert code == EXIT_ASSET_MISSING
    assert f"the asset folder {folder} does not exist" in text
    assert "--assets DIR" in text and ASSETS_ENV in text
    for name in REQUIRED:
        assert name in text
    assert text.splitlines()[-1] == "Not ready: the asset folder is missing."


def test_doctor_with_real_format_weight_standins(request: pytest.FixtureRequest) -> None:
    """The full stand-in folder (torch files through the real checkpoint inspectors)."""
    pytest.importorskip("core.standins.smpl_files")
    standin_assets: Path = request.getfixturevalue("standin_assets")  # conftest: shared, built once
    code, text = _doctor(standin_assets)
    assert code == 0, text
    assert "stand-in assets" in text
    assert " found" in _line_for(text, "3dpw_model_best.pth.tar")
    assert " found" in _line_for(text, "base_model.pt")
