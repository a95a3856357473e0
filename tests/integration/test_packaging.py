"""The wheel: it ships the Hydra configs, and the installed commands compose them.

The wheel is built offline from a copy of the sources (``pip wheel --no-index
--no-build-isolation``: the build backend of ``[build-system] requires`` must be
installed here; the ``dev`` extra installs it), installed with ``pip install --target``
into a temporary folder, and run from outside the repository with only that folder
on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import CONF, ROOT

COMMANDS = (
    "colcompress",
    "colcompress-report",
    "colcompress-export",
    "colcompress-prepare-media",
)


def _missing_build_requirements() -> list[str]:
    """The ``[build-system] requires`` entries this environment does not satisfy."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    missing = []
    for line in pyproject["build-system"]["requires"]:
        requirement = Requirement(line)
        try:
            found = version(requirement.name)
        except PackageNotFoundError:
            missing.append(line)
            continue
        if not requirement.specifier.contains(found, prereleases=True):
            missing.append(f"{line} (found {found})")
    return missing


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        f"pip {' '.join(args)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel built from a copy of the sources, and the folder it is installed in."""
    missing = _missing_build_requirements()
    if missing:
        pytest.skip(f"building the wheel offline needs {missing} (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(
        ROOT / "colcompress", source / "colcompress", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    dist, site = tmp / "dist", tmp / "site"
    _pip(
        "wheel",
        str(source),
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "-w",
        str(dist),
        cwd=tmp,
    )
    (wheel,) = dist.glob("colcompress-*.whl")
    _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel), cwd=tmp)
    return wheel, site


def _run_installed(site: Path, *command: str) -> subprocess.CompletedProcess:
    """``command`` run from a folder outside the repository, importing only ``site``."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    cwd = site.parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"{command}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def test_wheel_ships_every_config(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("colcompress/conf/")}
    configs = {f"colcompress/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")}
    assert "colcompress/conf/config.yaml" in shipped
    assert configs <= shipped, sorted(configs - shipped)


def test_installed_package_is_the_one_imported(installed):
    _, site = installed
    proc = _run_installed(
        site, sys.executable, "-c", "import colcompress; print(colcompress.__file__)"
    )
    assert Path(proc.stdout.strip()).is_relative_to(site)


def test_installed_command_composes_the_config(installed):
    _, site = installed
    proc = _run_installed(site, str(site / "bin" / "colcompress"), "--cfg", "job", "compressor=agc")
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"]["_target_"] == "colcompress.models.colbert.ColBERT"
    assert cfg["dataset"]["name"] == "nfcorpus"
    assert cfg["compressor"]["_target_"] == "colcompress.compressors.agc.AGC"


def test_installed_module_lists_the_config_groups(installed):
    _, site = installed
    proc = _run_installed(site, sys.executable, "-m", "colcompress.run", "--help")
    assert proc.stdout.startswith("colcompress is powered by Hydra")
    assert "compressor: agc," in proc.stdout
    assert "experiment: " in proc.stdout


@pytest.mark.parametrize("command", COMMANDS[1:])
def test_installed_tools_answer_help(installed, command):
    _, site = installed
    proc = _run_installed(site, str(site / "bin" / command), "--help")
    assert proc.stdout.startswith(f"usage: {command}")
