"""The README's figures: one per lab, made by `python -m labkit_course.figures` from executed notebooks."""

from __future__ import annotations

import base64
import io

import nbformat
import pytest

from labkit.labs import LABS
from labkit_course import figures
from labkit_course.repo import REPO


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f"lab{f.lab}")
def test_each_lab_has_a_small_figure_in_the_readme(figure):
    path = figures.OUT / f"lab{figure.lab}.png"
    assert path.exists(), f"{path.name} is missing: run `make run` (or `make figures` after it)"
    assert path.stat().st_size < figures.MAX_BYTES
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f'src="docs/figures/lab{figure.lab}.png"' in (REPO / "README.md").read_text()


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f"lab{f.lab}")
def test_each_figure_comes_from_one_cell_of_the_solved_notebook(figure):
    nb = nbformat.read(REPO / "solutions" / "notebooks" / f"{LABS[figure.lab].notebook}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and figure.cell in c.source]
    assert len(cells) == 1, f"lab {figure.lab}: {len(cells)} cells contain {figure.cell!r}"


def test_the_command_extracts_and_shrinks_a_figure(tmp_path):
    from PIL import Image

    noise = Image.effect_noise((2400, 900), 80).convert("RGB")  # incompressible: forces downscaling
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                'ours = {"gradient": 1}',
                outputs=[
                    nbformat.v4.new_output(
                        "display_data", data={"image/png": base64.b64encode(buffer.getvalue()).decode()}
                    )
                ],
            )
        ]
    )
    executed = tmp_path / "run"
    executed.mkdir()
    nbformat.write(nb, executed / f"{LABS[1].notebook}.ipynb")
    written = figures.make_figures(executed, tmp_path / "figures", labs=[1, 2])
    assert [p.name for p in written] == ["lab1.png"]  # lab 2 was not executed: skipped, said so
    assert written[0].stat().st_size < figures.MAX_BYTES
    assert buffer.tell() > figures.MAX_BYTES
