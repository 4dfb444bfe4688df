"""The README's figures: one per lab, taken from the executed solved notebooks.

    labkit-course run                                # executes the solved notebooks into build/run/
    python -m labkit_course.figures build/run        # writes docs/figures/labN.png  (make figures)

Each figure is an image output of a given cell of the executed notebook (the cell is found by a piece
of its source, so figures follow the notebooks as they change), recompressed to a palette PNG under
300 KB. The README's gallery (between ``<!-- FIGURES -->`` and ``<!-- /FIGURES -->``) is rewritten from
:data:`FIGURES` too. Nothing is drawn by hand.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from labkit.labs import LABS
from labkit_course.repo import REPO

OUT = REPO / "docs" / "figures"
MAX_BYTES = 300 * 1024


@dataclass(frozen=True)
class Figure:
    lab: int
    cell: str  # a piece of the source of the cell that draws it
    caption: str  # alt text and caption in the README
    index: int = 0  # which image output of that cell


FIGURES = [
    Figure(1, 'ours = {"gradient"', "Lab 1: six saliency methods on one photo, yours (top) and Captum's (bottom)"),
    Figure(2, "rows, titles = [], []", "Lab 2: photos walked to another class, and the perturbation that does it"),
    Figure(
        3,
        "robust = with_progress(visualize_class_robust",
        "Lab 3: what EfficientNet-Lite0 thinks each class looks like",
    ),
    Figure(4, 'ax.hist(results["seed000"]', "Lab 4: the model's confidence on noise and on photos"),
    Figure(5, "LANES = [", "Lab 5: models trained on adversarially relabelled digits, tested on clean ones"),
]


def _image(nb, figure: Figure) -> bytes:
    cells = [c for c in nb.cells if c.cell_type == "code" and figure.cell in c.source]
    if not cells:
        raise LookupError(f"lab {figure.lab}: no code cell contains {figure.cell!r}")
    images = [o["data"]["image/png"] for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if len(images) <= figure.index:
        raise LookupError(
            f"lab {figure.lab}: the cell with {figure.cell!r} has {len(images)} image(s); was the notebook executed?"
        )
    return base64.b64decode(images[figure.index])


def compress(png: bytes, max_bytes: int = MAX_BYTES, max_width: int = 1400) -> bytes:
    """``png`` re-encoded under ``max_bytes``: full colour if it fits, else 256 colours (dithered if that
    fits, which keeps photos smooth), else narrower, no wider than ``max_width``."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width = min(image.width, max_width)
    while True:
        scaled = (
            image
            if width == image.width
            else image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        )
        for encode in (
            lambda im: im,
            lambda im: im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG),
            lambda im: im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE),
        ):
            buffer = io.BytesIO()
            encode(scaled).save(buffer, format="PNG", optimize=True)
            if buffer.tell() < max_bytes:
                return buffer.getvalue()
        if width < 300:
            return buffer.getvalue()
        width = int(width * 0.85)


def make_figures(executed: Path, out: Path = OUT, labs: list[int] | None = None) -> list[Path]:
    """Write ``out/labN.png`` for every lab whose executed notebook is in ``executed``."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in FIGURES:
        if labs and figure.lab not in labs:
            continue
        path = Path(executed) / f"{LABS[figure.lab].notebook}.ipynb"
        if not path.exists():
            print(f"lab {figure.lab}: {path} not found (run `labkit-course run --labs {figure.lab}` first); skipped")
            continue
        png = compress(_image(nbformat.read(path, as_version=4), figure))
        target = out / f"lab{figure.lab}.png"
        target.write_bytes(png)
        written.append(target)
        print(
            f"lab {figure.lab}: {target.relative_to(REPO) if target.is_relative_to(REPO) else target} "
            f"({len(png) // 1024} KB)"
        )
    return written


def gallery(out: Path = OUT) -> str:
    """The README's gallery: Lab 1 across the page, then two figures a row."""

    def cell(figure: Figure, attrs: str = "") -> str:
        src = (out / f"lab{figure.lab}.png").relative_to(REPO).as_posix()
        return f'<td{attrs}><img src="{src}" alt="{figure.caption}"><br><sub>{figure.caption}</sub></td>'

    first, *rest = FIGURES
    rows = ["<tr>" + cell(first, ' colspan="2"') + "</tr>"]
    for i in range(0, len(rest), 2):
        rows.append("<tr>" + "".join(cell(f, ' width="50%"') for f in rest[i : i + 2]) + "</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def update_readme(readme: Path = REPO / "README.md", out: Path = OUT) -> bool:
    """Rewrite the README's gallery block; returns whether it changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- FIGURES -->", "<!-- /FIGURES -->"
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{gallery(out)}\n{end}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit_course.figures", description=__doc__.splitlines()[0])
    parser.add_argument(
        "executed", nargs="?", default="build/run", help="folder of executed notebooks (default build/run)"
    )
    parser.add_argument("--out", default=str(OUT), help="where to write labN.png (default docs/figures)")
    parser.add_argument("--labs", help="comma-separated lab numbers (default: all)")
    args = parser.parse_args(argv)
    labs = [int(n) for n in args.labs.split(",")] if args.labs else None
    written = make_figures(Path(args.executed), Path(args.out), labs)
    if Path(args.out).resolve() == OUT.resolve() and update_readme():
        print("README.md: gallery updated")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
