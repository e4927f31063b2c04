"""Cost of SinGANSegAugmentd in a MONAI segmentation training, on the real nuclei sample.

Measures (CPU, this machine's threads):
- samples per second of the dictionary transform alone, with and without a pool of batched samples, and with a
  pool that serves each sample several times (``pool_refresh`` < 1);
- seconds per epoch of a MONAI UNet training (SupervisedTrainer) without the transform and with it at prob 0.5,
  and the slowdown.

    python benchmarks/bench_augment.py [--epochs 3] [--items 32] [--pools 0 16] [--refresh 1.0 0.25] [--workers 0]

Writes benchmarks/results/augment.json and augment.md and prints the table. The model is trained here first
(max size 64, 100 iterations per scale, about a minute) unless benchmarks/results/models/nuclei_image.pt exists.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.engines import SupervisedTrainer
from monai.losses import DiceLoss
from monai.networks.nets import UNet
from monai.transforms import AsDiscreted, Compose, LoadImaged, RandSpatialCropd, ScaleIntensityd
from monai.utils import set_determinism

from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegAugmentd, SinGANSegConfig, SinGANSegTrainer
from monai_singanseg.io import load_training_pair

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"


def ensure_model(folder: Path) -> Path:
    path = folder / "nuclei_image.pt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pair = load_training_pair([IMAGE], LABEL)
        config = SinGANSegConfig(image_channels=1, mask_channels=1, pyramid=PyramidConfig(max_size=64),
                                 optim=OptimConfig(iters_per_scale=100))
        SinGANSegTrainer(config, progress=False).fit(pair.real, pair.intensity, pair.labels, path)
    return path


def chain(models: Path | None, pool_size: int, refresh: float = 1.0) -> tuple[list, list]:
    deterministic = [LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
                     AsDiscreted("label", threshold=0.5)]
    random_part = [ScaleIntensityd("image"), RandSpatialCropd(["image", "label"], (96, 96), random_size=False)]
    if models is not None:
        random_part.insert(0, SinGANSegAugmentd(["image"], "label", models, prob=0.5, pool_size=pool_size,
                                                     pool_refresh=refresh))
    return deterministic, random_part


def epoch_seconds(models: Path | None, pool_size: int, items: int, epochs: int, workers: int = 0,
                  refresh: float = 1.0) -> float:
    set_determinism(0)
    deterministic, random_part = chain(models, pool_size, refresh)
    data = [{"image": str(IMAGE), "label": str(LABEL)}] * items
    dataset = CacheDataset(data, Compose(deterministic + random_part), progress=False)
    net = UNet(2, 1, 1, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs + 1, train_data_loader=DataLoader(dataset, batch_size=8, num_workers=workers),
        network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3), loss_function=DiceLoss(sigmoid=True),
    )
    times = []
    from ignite.engine import Events

    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: times.append(time.perf_counter()))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: times.append(time.perf_counter()))
    trainer.run()
    per_epoch = [times[i + 1] - times[i] for i in range(0, len(times), 2)][1:]  # first epoch warms up
    set_determinism(None)
    return float(np.median(per_epoch))


def transform_rate(models: Path, pool_size: int, refresh: float = 1.0, count: int = 64) -> float:
    sample = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)(
        {"image": str(IMAGE), "label": str(LABEL)})
    aug = SinGANSegAugmentd(["image"], "label", models, prob=1.0, pool_size=pool_size, pool_refresh=refresh)
    aug.set_random_state(0)
    aug(sample)
    start = time.perf_counter()
    for _ in range(count):
        aug(sample)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--pools", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--refresh", type=float, nargs="+", default=[1.0, 0.25], help="pool_refresh values (pools > 0)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="DataLoader worker counts to try")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    model = ensure_model(args.out / "models")
    models = model.parent
    settings = [(p, r) for p in args.pools for r in (args.refresh if p > 0 else [1.0])]
    rates = {s: transform_rate(models, *s) for s in settings}
    rows = []
    for workers in args.workers:
        base = epoch_seconds(None, 0, args.items, args.epochs, workers)
        rows.append({"setting": f"no augmentation, {workers} workers", "epoch_seconds": base, "slowdown": 0.0})
        for pool, refresh in settings:
            seconds = epoch_seconds(models, pool, args.items, args.epochs, workers, refresh)
            rows.append({"setting": f"SinGANSegAugmentd prob 0.5, pool_size {pool}, pool_refresh {refresh:g}, "
                                    f"{workers} workers",
                         "epoch_seconds": seconds, "slowdown": seconds / base - 1.0,
                         "transform_samples_per_second": rates[(pool, refresh)]})
    meta = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "items_per_epoch": args.items, "crop": [96, 96], "batch_size": 8, "model_size": 64,
            "unet": "UNet(2D, channels 16-128, 2 residual units)"}
    (args.out / "augment.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = ["| setting | s/epoch | slowdown | transform samples/s (prob 1) |", "| --- | --- | --- | --- |"]
    for r in rows:
        rate = r.get("transform_samples_per_second")
        lines.append(f"| {r['setting']} | {r['epoch_seconds']:.2f} | {100 * r['slowdown']:.0f} % | "
                     f"{'' if rate is None else f'{rate:.1f}'} |")
    text = f"# Cost of SinGANSegAugmentd in a UNet training epoch\n\n{meta}\n\n" + "\n".join(lines) + "\n"
    (args.out / "augment.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
