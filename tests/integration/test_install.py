"""The install path (docs/install.md, "Without the package: from a checkout";
deploy/install-deps.sh): the venv's console scripts work, and the wheel a mail
server gets holds the daemon and nothing else.

tests/run.sh runs the suite with the venv's own interpreter, so sys.executable's
directory is the venv's bin/ that install-deps.sh made.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import failoverd

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["failoverd", "failoverctl"])
def test_console_scripts_in_the_venv_print_the_package_version_and_commit(script: str) -> None:
    path = VENV_BIN / script
    assert path.is_file(), f"{path} missing: deploy/install-deps.sh installs it"
    # No config file and a clean environment: --version must not need either.
    done = subprocess.run(
        [str(path), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    # An editable install runs the checkout: its commit comes from git.
    assert re.fullmatch(
        rf"failoverd {re.escape(failoverd.__version__)} \(commit [0-9a-f]{{7,40}}(\+dirty)?\)",
        done.stdout.strip(),
    ), done.stdout


def test_the_venv_is_made_by_debians_python() -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("not running from a venv (run the suite with bash tests/run.sh)")
    cfg = (Path(sys.prefix) / "pyvenv.cfg").read_text().splitlines()
    assert "home = /usr/bin" in cfg


def test_wheel_holds_only_the_daemon_with_license_and_type_marker(tmp_path: Path) -> None:
    # Build from a copy: building in the checkout would leave build/ behind.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for pkg in ("failoverd", "chaos"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    # What the package build writes before it builds (failoverd.release).
    (src / "failoverd" / "BUILD_COMMIT").write_text("3f2a9c1\n")
    wheels = tmp_path / "wheels"
    # Built the way pip builds it on a mail server (PEP 517, isolated setuptools),
    # as install-deps.sh's editable install does too.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("failoverd-*.whl")
    assert wheel.name.startswith(f"failoverd-{failoverd.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"failoverd", f"failoverd-{failoverd.__version__}.dist-info"}
    assert "failoverd/py.typed" in names
    assert "failoverd/BUILD_COMMIT" in names
    # Subpackages too: the daemon cannot start without failoverd/config/.
    modules = {n for n in names if n.startswith("failoverd/") and n.endswith(".py")}
    sources = {
        f"failoverd/{p.relative_to(REPO / 'failoverd')}" for p in REPO.glob("failoverd/**/*.py")
    }
    assert modules == sources
    info = f"failoverd-{failoverd.__version__}.dist-info"
    assert any(n.startswith(info) and n.endswith("LICENSE") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "failoverd = failoverd.main:main" in entry_points
    assert "failoverctl = failoverd.cli.failoverctl:main" in entry_points


def test_a_second_install_deps_run_changes_nothing() -> None:
    venv = Path(sys.prefix)
    stamp = venv / ".failoverd-install"
    if not stamp.exists():
        pytest.skip("this venv was not made by deploy/install-deps.sh")
    # tests/run.sh has just run it: everything is in place, so nothing may change.
    watched = [stamp, *venv.glob("lib/python3*/site-packages/__editable__*failoverd*")]
    watched += [venv / "bin" / "failoverd", venv / "bin" / "failoverctl"]
    before = {p: p.stat().st_mtime_ns for p in watched}
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "install-deps.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FAILOVERD_VENV": str(venv)},
    )
    assert done.returncode == 0, done.stderr
    assert "Successfully installed" not in done.stdout + done.stderr
    assert {p: p.stat().st_mtime_ns for p in watched} == before
