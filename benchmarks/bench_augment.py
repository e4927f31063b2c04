"""Cost of SinGANSegAugmentd in a MONAI segmentation training, on the real nuclei sample.

Measures (CPU, this machine's threads):
- samples per second of the dictionary transform alone, with and without a pool of batched samples, and with a
  pool that serves each sample several times (``pool_refresh`` < 1);
- seconds per epoch of a MONAI UNet training (SupervisedTrainer) without the transform and with it at prob 0.5,
  and the slowdown.

    python benchmarks/bench_augment.py [--epochs 6] [--items 64] [--repeats 3] [--pools 0 16] [--refresh 1.0 0.25 0.125]
                                       [--workers 0]

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
from machine import machine
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


class TimedAugmentd(SinGANSegAugmentd):
    """SinGANSegAugmentd that adds the seconds spent in it to ``TimedAugmentd.seconds`` (main process only)."""

    seconds = 0.0

    def __call__(self, data):
        start = time.perf_counter()
        out = super().__call__(data)
        TimedAugmentd.seconds += time.perf_counter() - start
        return out


def chain(models: Path | None, pool_size: int, refresh: float = 1.0) -> tuple[list, list]:
    deterministic = [LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
                     AsDiscreted("label", threshold=0.5)]
    random_part = [ScaleIntensityd("image"), RandSpatialCropd(["image", "label"], (96, 96), random_size=False)]
    if models is not None:
        random_part.insert(0, TimedAugmentd(["image"], "label", models, prob=0.5, pool_size=pool_size,
                                            pool_refresh=refresh))
    return deterministic, random_part


def epoch_seconds(models: Path | None, pool_size: int, items: int, epochs: int, workers: int = 0,
                  refresh: float = 1.0) -> tuple[float, float]:
    """Median seconds per epoch (the first epoch warms up and is left out) and seconds per epoch spent inside the
    transform (0 with workers, where it runs in other processes)."""
    set_determinism(0)
    deterministic, random_part = chain(models, pool_size, refresh)
    data = [{"image": str(IMAGE), "label": str(LABEL)}] * items
    dataset = CacheDataset(data, Compose(deterministic + random_part), progress=False)
    net = UNet(2, 1, 1, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs + 1,
        train_data_loader=DataLoader(dataset, batch_size=8, num_workers=workers),
        network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3), loss_function=DiceLoss(sigmoid=True),
    )
    times = []
    from ignite.engine import Events

    def started(_):
        times.append(time.perf_counter())
        if len(times) == 3:  # the second epoch starts: count transform time from here
            TimedAugmentd.seconds = 0.0

    trainer.add_event_handler(Events.EPOCH_STARTED, started)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: times.append(time.perf_counter()))
    TimedAugmentd.seconds = 0.0
    trainer.run()
    per_epoch = [times[i + 1] - times[i] for i in range(0, len(times), 2)][1:]  # first epoch warms up
    set_determinism(None)
    return float(np.median(per_epoch)), TimedAugmentd.seconds / epochs


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
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of every setting; medians reported")
    parser.add_argument("--pools", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--refresh", type=float, nargs="+", default=[1.0, 0.25, 0.125],
                        help="pool_refresh values (pools > 0)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to try")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    model = ensure_model(args.out / "models")
    models = model.parent
    settings = [(p, r) for p in args.pools for r in (args.refresh if p > 0 else [1.0])]
    rates = {s: transform_rate(models, *s, count=256) for s in settings}
    runs: dict[tuple, list[tuple[float, float]]] = {}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every setting alike
        for workers in args.workers:
            runs.setdefault((workers, None), []).append(epoch_seconds(None, 0, args.items, args.epochs, workers))
            for pool, refresh in settings:
                runs.setdefault((workers, (pool, refresh)), []).append(
                    epoch_seconds(models, pool, args.items, args.epochs, workers, refresh))
    rows = []
    for (workers, setting), values in runs.items():
        seconds = float(np.median([v[0] for v in values]))
        base = float(np.median([v[0] for v in runs[(workers, None)]]))
        in_transform = float(np.median([v[1] for v in values]))
        row = {"workers": workers, "epoch_seconds": seconds, "slowdown": seconds / base - 1.0,
               "transform_seconds_per_epoch": in_transform, "transform_share_of_base_epoch": in_transform / base,
               "epoch_seconds_runs": [v[0] for v in values]}
        if setting is None:
            row["setting"] = f"no augmentation, {workers} workers"
        else:
            pool, refresh = setting
            row.update(setting=f"prob 0.5, pool_size {pool}, pool_refresh {refresh:g}, {workers} workers",
                       pool_size=pool, pool_refresh=refresh, transform_samples_per_second=rates[setting])
        rows.append(row)
    meta = {**machine(), "items_per_epoch": args.items, "epochs": args.epochs, "repeats": args.repeats, "crop": [96, 96],
            "batch_size": 8, "model_size": 64, "unet": "UNet(2D, channels 16-128, 2 residual units)"}
    (args.out / "augment.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = ["| setting | s/epoch (median) | slowdown | s/epoch inside the transform | transform samples/s (prob 1) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        rate = r.get("transform_samples_per_second")
        inside = "" if "pool_size" not in r or r["workers"] else \
            (f"{r['transform_seconds_per_epoch']:.3f} "
             f"({100 * r['transform_share_of_base_epoch']:.0f} % of the base epoch)")
        lines.append(f"| {r['setting']} | {r['epoch_seconds']:.3f} | {100 * r['slowdown']:+.0f} % | {inside} | "
                     f"{'' if rate is None else f'{rate:.0f}'} |")
    text = (f"# Cost of SinGANSegAugmentd in a UNet training epoch\n\n{args.items} real 256x256 nuclei items per "
            f"epoch, 96x96 random crops, batch 8, {meta['unet']}, median of {args.repeats} interleaved runs of "
            f"{args.epochs} epochs, {meta['threads']} threads, load average {meta['load_average_1min']}.\n\n"
            + "\n".join(lines) + "\n")
    (args.out / "augment.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
