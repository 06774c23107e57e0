"""Each package stands alone: it imports only packages above it, and installs with its own deps."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = [
    "gpt-tokenizers", "gpt-parallel", "gpt-fp8", "gpt-data", "gpt-ckpt",
    "gpt-moe", "gpt-ssm", "gpt-models", "gpt-inference",
]  # fmt: skip
IMPORT_NAMES = {name.replace("-", "_"): name for name in ORDER}


def _imports(package: str) -> set[str]:
    """Workspace packages imported anywhere in a package's source."""
    found: set[str] = set()
    src = ROOT / "packages" / package / "src"
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in IMPORT_NAMES or top.startswith("gpt_") and top.endswith("_app"):
                    found.add(top)
    return found


def _declared(package: str) -> set[str]:
    meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    deps = meta["project"].get("dependencies", [])
    return {d.split("[")[0].split(">")[0].split("=")[0].strip() for d in deps}


@pytest.mark.parametrize("package", ORDER)
def test_package_imports_only_packages_above_it_and_declares_them(package):
    allowed = {p.replace("-", "_") for p in ORDER[: ORDER.index(package)]}
    own = package.replace("-", "_")
    imported = _imports(package) - {own}
    assert not any(name.endswith("_app") for name in imported), "a package never imports an app"
    assert imported <= allowed, f"{package} imports packages below it: {sorted(imported - allowed)}"
    undeclared = {IMPORT_NAMES[i] for i in imported} - _declared(package)
    assert not undeclared, f"{package} imports {sorted(undeclared)} without declaring them"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    out = tmp_path_factory.mktemp("wheels")
    for package in ORDER:
        subprocess.run(
            [uv, "build", "--package", package, "--wheel", "--out-dir", str(out), "--quiet"],
            cwd=ROOT, check=True, timeout=300,
        )  # fmt: skip
    return uv, out


def _fresh_venv_import(
    uv: str, wheels_dir: Path, tmp: Path, package: str
) -> subprocess.CompletedProcess:
    venv = tmp / f"venv-{package}"
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "--find-links", str(wheels_dir), package],
        check=True, timeout=600, env=env,
    )  # fmt: skip
    own = package.replace("-", "_")
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {own}\n"
        f"for m in pkgutil.walk_packages({own}.__path__, '{own}.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("package", ORDER)
def test_package_wheel_installs_and_imports_alone(package, wheels, tmp_path):
    uv, wheels_dir = wheels
    result = _fresh_venv_import(uv, wheels_dir, tmp_path, package)
    assert result.returncode == 0, result.stderr[-2000:]
    if package == "gpt-tokenizers":
        venv_site = tmp_path / f"venv-{package}"
        assert not list(venv_site.rglob("torch/__init__.py")), (
            "gpt-tokenizers must not pull in torch"
        )
        assert result.stdout.strip() == "False"
