"""The app's Examples ship inside the repository (examples/), so a fresh clone or a Space shows them: read from
the Gradio app object that app.py builds, every example is a file under the repository root, none outside."""

from pathlib import Path

import pytest
from conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def demo():
    import app

    return app.demo


def example_paths(demo) -> dict:
    """{input component type: [example file, ...]} of every gr.Examples table in the app, as app.py gave them
    (`raw_samples`; `samples` are Gradio's cached copies)."""
    import gradio as gr

    found = {}
    for block in demo.blocks.values():
        if isinstance(block, gr.Dataset):
            kinds = "+".join(type(component).__name__ for component in block._components)
            found.setdefault(kinds, []).extend(Path(value) for row in block.raw_samples for value in row)
    return found


def test_the_app_lists_its_examples_from_inside_the_repository(demo):
    found = example_paths(demo)
    assert found.get("Image") and found.get("Video"), found  # the Image and the Video tab both have examples
    for path in (p for paths in found.values() for p in paths):
        assert path.is_file(), path
        assert path.resolve().is_relative_to(REPO.resolve()), f"{path} is outside the repository"
        assert path.resolve().parent == EXAMPLES.resolve(), path


def test_every_example_file_has_its_source_and_licence_and_they_stay_small():
    files = [p for p in EXAMPLES.iterdir() if p.name != "README.md"]
    readme = (EXAMPLES / "README.md").read_text()
    for path in files:
        assert f"| `{path.name}` |" in readme, f"{path.name} has no source / licence row in examples/README.md"
    assert sum(p.stat().st_size for p in files) <= 2_000_000
