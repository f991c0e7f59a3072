"""Write a few held-out test images of a recipe's data as PNG files (`make demo` predicts
them): `python -m cnnexp.serving.samples FOLDER [N] [RECIPE]`. Files are named
INDEX_CLASS.png, so a reader can check each prediction by eye."""

from __future__ import annotations

import sys
from pathlib import Path


def write_samples(folder: Path, n: int = 8, recipe_name: str = "digits") -> list[Path]:
    from PIL import Image

    from cnnexp.data import build_data
    from cnnexp.recipe import load_recipe

    data = build_data(load_recipe(recipe_name))
    held = data.test()
    if held.x is None:
        raise SystemExit(f"{recipe_name}: its test split is on disk; use its own files")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(min(n, len(held))):
        x = held.x[i].permute(1, 2, 0).numpy()
        img = Image.fromarray(x[..., 0] if x.shape[2] == 1 else x)
        path = folder / f"{i:03d}_{data.classes[int(held.y[i])]}.png"
        img.save(path)
        out.append(path)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    written = write_samples(Path(args[0]), int(args[1]) if len(args) > 1 else 8,
                            args[2] if len(args) > 2 else "digits")
    print(f"wrote {len(written)} held-out test images to {args[0]}")
