"""Every package and app explains itself: what it is, a short example, and its flags (generated)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = sorted(
    [p for p in (ROOT / "packages").iterdir() if p.is_dir()]
    + [p for p in (ROOT / "apps").iterdir() if p.is_dir()]
)


def _flag_docs_tool():
    spec = importlib.util.spec_from_file_location(
        "write_flag_docs", ROOT / "tools" / "flags" / "write_flag_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_package_and_app_has_a_readme_with_an_example(project):
    readme = project / "README.md"
    assert readme.exists(), f"{project.relative_to(ROOT)} has no README.md"
    text = readme.read_text()
    assert text.startswith(f"# {project.name}"), f"{readme} must start with its name as the title"
    assert "```python" in text or "```bash" in text, f"{readme} has no example"
    assert "## Flags" in text, f"{readme} has no Flags section"


def test_generated_flag_docs_are_up_to_date():
    """docs/flags.md and each README's flag section match the flag declarations."""
    tool = _flag_docs_tool()
    stale = [
        str(path.relative_to(ROOT))
        for path, text in tool.expected_files().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale: {stale}; run `uv run tools/flags/write_flag_docs.py`"


def test_flag_section_lists_exactly_the_owners_flags():
    tool = _flag_docs_tool()
    section = tool.flag_section("gpt_moe")
    assert "`--num-experts`" in section and "`--num-layers`" not in section
    assert section.startswith(tool.BEGIN) and section.endswith(tool.END)
