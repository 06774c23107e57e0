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
    "gpt-flags", "gpt-tokenizers", "gpt-parallel", "gpt-fp8", "gpt-data", "gpt-ckpt",
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


#: Import names whose distribution has another name.
DISTRIBUTION_OF = {
    "yaml": "pyyaml",
    "flash_attn": "flash-attn",
    "transformer_engine": "transformer-engine",
    "gpt_pretrain_app": "pretrain",
}
#: Imports that bring in a distribution beside the one named by their first component.
SUBMODULE_DISTRIBUTIONS = {"torch.utils.tensorboard": "tensorboard"}


def _imported_distributions(source_dir: Path) -> set[str]:
    """Every distribution that the code under `source_dir` imports (standard library left out)."""
    found: set[str] = set()
    for path in source_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                found.add(DISTRIBUTION_OF.get(top, top.replace("_", "-")))
                for prefix, dist in SUBMODULE_DISTRIBUTIONS.items():
                    if name == prefix or name.startswith(prefix + "."):
                        found.add(dist)
    return found


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0].split("[")[0]
    for sep in ("==", ">=", "<=", "~=", ">", "<", "!="):
        name = name.split(sep)[0]
    return name.strip().lower()


def _declared_distributions(project_dir: Path) -> set[str]:
    """The dependencies and every optional extra's dependencies of a pyproject."""
    meta = tomllib.loads((project_dir / "pyproject.toml").read_text())["project"]
    requirements = list(meta.get("dependencies", []))
    for extra in meta.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {_requirement_name(r) for r in requirements}


@pytest.mark.parametrize("package", ORDER)
def test_package_declares_exactly_the_distributions_it_imports(package):
    """A package declares what it imports, nothing more and nothing less (optional imports, such
    as GPU kernels, are declared in an extra)."""
    project = ROOT / "packages" / package
    own = package
    imported = _imported_distributions(project / "src") - {own}
    declared = _declared_distributions(project)
    assert imported == declared, (
        f"{package}: imported but not declared {sorted(imported - declared)}, "
        f"declared but not imported {sorted(declared - imported)}"
    )


@pytest.mark.parametrize("app", sorted(p.name for p in (ROOT / "apps").iterdir() if p.is_dir()))
def test_app_declares_every_distribution_it_imports(app):
    project = ROOT / "apps" / app
    own = {project.name, f"gpt-{app}-app"}
    imported = _imported_distributions(project) - own
    undeclared = imported - _declared_distributions(project)
    assert not undeclared, f"apps/{app} imports {sorted(undeclared)} without declaring them"


def test_flag_declaring_packages_do_not_need_tokenizer_libraries():
    """Declaring flags needs only gpt-flags: no package but gpt-tokenizers (and what depends on it)
    pulls in tiktoken or sentencepiece."""
    for package in ORDER:
        if package == "gpt-tokenizers":
            continue
        declared = _declared_distributions(ROOT / "packages" / package)
        assert not declared & {"tiktoken", "sentencepiece"}, package
        if "gpt-tokenizers" not in declared:
            assert "gpt-flags" in declared or package == "gpt-flags", package


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
    venv_site = tmp_path / f"venv-{package}"
    if package in ("gpt-flags", "gpt-parallel"):
        for library in ("tiktoken", "sentencepiece"):
            assert not list(venv_site.rglob(f"{library}/__init__.py")), (
                f"{package} must install without {library}"
            )
    if package == "gpt-flags":
        assert not list(venv_site.rglob("torch/__init__.py")), "gpt-flags must not pull in torch"
    if package == "gpt-tokenizers":
        assert not list(venv_site.rglob("torch/__init__.py")), (
            "gpt-tokenizers must not pull in torch"
        )
        assert result.stdout.strip() == "False"
