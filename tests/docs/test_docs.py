"""Every ```python block of every docs/*.md and README.md runs, in order, one fresh namespace
per page (a block whose first line is ``# not run`` is skipped: hardware or a browser). Shell
blocks are not run. Also: relative links between pages resolve, the API reference names every
public name, and the architecture page names only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import authenticator
import transports.inprocess

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
SKIP_MARKER = "# not run"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each runnable python block, in page order."""
    blocks = []
    for match in FENCE.finditer(text):
        language, code = match.group(1), match.group(2)
        if language != "python" or code.lstrip().startswith(SKIP_MARKER):
            continue
        first_line = text.count("\n", 0, match.start(2)) + 1
        blocks.append((first_line, code))
    return blocks


PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
RUNNABLE = [page for page in PAGES if python_blocks(page.read_text())]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: page.name)
def test_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for first_line, code in python_blocks(page.read_text()):
        # Padding keeps line numbers in tracebacks equal to the line numbers in the page.
        compiled = compile("\n" * (first_line - 1) + code, str(page), "exec")
        exec(compiled, namespace)  # noqa: S102 - the point: the docs' own examples


def test_the_user_pages_have_examples() -> None:
    names = {page.name for page in RUNNABLE}
    assert {"quickstart.md", "library.md", "api.md"} <= names


def test_fences_are_closed() -> None:
    for page in PAGES:
        lines = [line for line in page.read_text().splitlines() if line.startswith("```")]
        assert len(lines) % 2 == 0, f"{page.name}: an unclosed ``` fence"


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in PAGES:
        for target in link.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_api_reference_names_every_public_name() -> None:
    text = (DOCS / "api.md").read_text()
    public = [*authenticator.__all__, "InProcessDevice"]
    missing = [name for name in public if f"`{name}" not in text]
    assert not missing, f"docs/api.md does not describe: {missing}"
    assert hasattr(transports.inprocess, "InProcessDevice")


def test_architecture_names_only_modules_that_exist() -> None:
    text = (DOCS / "architecture.md").read_text()
    paths = re.findall(r"`((?:authenticator|transports|tests)/[\w/]*\.py)`", text)
    assert len(paths) > 10
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
