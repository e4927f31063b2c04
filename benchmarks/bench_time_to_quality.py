"""Time to quality: how good a model is for the training time it cost, for the faithful and the fast schedule.

    python benchmarks/bench_time_to_quality.py run --data nuclei --max-size 96 --schedule fast --iters 200 400
    python benchmarks/bench_time_to_quality.py timing [--only mni/96/faithful]   # idle seconds per iteration
    python benchmarks/bench_time_to_quality.py table          # markdown table + PNG curves from the saved runs
    python benchmarks/bench_time_to_quality.py hybrid --coarse-from A.pt --fine-from B.pt   # which scales differ
    python benchmarks/bench_time_to_quality.py coarsest --data mni --host A.pt --set optim.coarse.iters_per_scale=6000

``run`` trains one model per ``--iters`` value (iterations per scale; the fast schedule's plateau stop may use
fewer) on a real pair, then measures the quality of its samples against the pair as the model sees it (finest
scale, ``[-1, 1]``):

- ``swd``: sliced Wasserstein distance of 7x7 image patches, samples vs the real image (lower is closer);
- ``diversity``: 1 - mean pairwise MS-SSIM of the samples' image channels (0 = copies);
- ``fg_error``: mean |foreground fraction of a sample's mask - the real mask's| (lower is closer);
- ``rec_mse``: MSE of the reconstruction path's output against the real pair (how well the model fits it).

Samples: ``--num`` (24) at start scale 0, seeded. Training seconds are the trainer's own per-scale timings
(``training.log`` of the checkpoint), so a resumed run counts only its training. Data:

- ``nuclei``: the 256x256 crop of the stardist nuclei image + mask shipped in ``data/nuclei`` (BSD-3);
- ``mni``: axial slice z = 80 of nilearn's MNI152 T1 template (1 mm), mask = white-matter probability > 0.5.

Runs append to ``benchmarks/results/time_to_quality.json`` (one record per data, size, schedule, iterations,
threads, seed, device). Quality does not depend on how busy the machine was, but wall time does, and the long faithful
runs shared the CPU with other work: so the training time in the table is the number of iterations each run made
at each scale times the seconds per iteration that ``timing`` measures there on an idle machine
(``time_to_quality_timings.json``; options that only change how many iterations run, or their learning rates, reuse
the schedule's own timing). ``table`` writes ``time_to_quality.md`` and ``time_to_quality.png``:
one row per recipe, the mean ± sd over the training seeds run (``--seed``; one recipe's models differ a lot by
seed, so compare means, not single runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from machine import cpu_name

from monai_singanseg import SinGANSeg, SinGANSegConfig, SinGANSegTrainer, load_training_pair, prepare_training_pair
from monai_singanseg.checkpoint import read_checkpoint
from monai_singanseg.files import atomic_write
from monai_singanseg.metrics import foreground, foreground_fraction, ms_ssim_diversity, sliced_wasserstein
from monai_singanseg.pyramid import build_pyramid, scale_shapes
from monai_singanseg.training.trainer import config_differences

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MODELS = RESULTS / "models" / "time_to_quality"
RECORDS = RESULTS / "time_to_quality.json"
SWD_OPTIONS = {"patch_size": 7, "num_projections": 128, "levels": 1, "stride": 1, "seed": 0}
MNI_SLICE = 80


def load_pair(name: str):
    """The real training pair ``name`` (``nuclei`` or ``mni``) as a :class:`~monai_singanseg.io.TrainingPair`."""
    if name == "nuclei":
        data = ROOT / "data" / "nuclei"
        return load_training_pair([data / "nuclei_image.png"], data / "nuclei_label.png")
    folder = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
    t1 = nib.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    wm = nib.load(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    image = np.asarray(t1.dataobj[:, :, MNI_SLICE], dtype=np.float32)[None]
    mask = (np.asarray(wm.dataobj[:, :, MNI_SLICE], dtype=np.float32) > 0.5 * 255).astype(np.float32)[None]
    return prepare_training_pair(torch.from_numpy(image), torch.from_numpy(mask), "MNI152 T1", "MNI152 WM > 0.5")


def _parse(current: float | str | tuple, value: str) -> float | str | tuple:
    """``value`` as the type of the field's current value (``true``/``1`` or ``false``/``0`` for a flag; a tuple's
    items joined by ``+``, e.g. ``network.critic_augment=translation+cutout``)."""
    if isinstance(current, tuple):  # items of the type of the current ones (strings for an empty tuple)
        kind = type(current[0]) if current else str
        return tuple(kind(item) for item in value.split("+") if item)
    if isinstance(current, bool):
        if value.lower() not in ("1", "true", "0", "false"):
            raise SystemExit(f"--set: {value!r} is not a flag value (true, false, 1, 0)")
        return value.lower() in ("1", "true")
    return type(current)(value)


def make_config(pair, max_size: int, schedule: str, iters: int, seed: int, overrides: str = "") -> SinGANSegConfig:
    """The run's config; ``overrides`` like ``"optim.generator_steps=2,optim.coarse.iters_per_scale=2000"``."""
    config = SinGANSegConfig.for_schedule(schedule, iters_per_scale=iters, spatial_dims=pair.spatial_dims,
                                          image_channels=pair.image_channels, mask_channels=pair.labels.channels,
                                          seed=seed)
    config.pyramid.max_size = max_size
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        section, _, rest = key.partition(".")
        if not value or not rest or not hasattr(config, section):
            raise SystemExit(f"--set {item}: expected section.field=value, e.g. optim.generator_steps=2")
        name, *inner = rest.split(".")
        owner = getattr(config, section)
        if not hasattr(owner, name):
            raise SystemExit(f"--set {item}: {section} has no field {name!r}")
        if inner:  # "optim.coarse.iters_per_scale=2000": an entry of the coarse scales' overrides
            if (section, name, len(inner)) != ("optim", "coarse", 1) or inner[0] == "betas":
                raise SystemExit(f"--set {item}: only optim.coarse.<number field>=value goes one level down")
            owner.coarse[inner[0]] = _parse(getattr(owner, inner[0]), value)
        else:
            setattr(owner, name, _parse(getattr(owner, name), value))
    return config.validate()


@torch.no_grad()
def measure(model: SinGANSeg, real: torch.Tensor, num: int, seed: int) -> dict:
    """Quality figures of ``num`` samples at start scale 0 against ``real`` ``(1, C, *finest)``."""
    n_img = model.config.image_channels
    samples = torch.cat([model.generate(1, 0, generator=torch.Generator(model.device).manual_seed(seed + i))
                         for i in range(num)]).cpu()
    fractions = foreground_fraction(foreground(samples[:, n_img:], model.labels))
    real_fraction = float(foreground_fraction(foreground(real[:, n_img:], model.labels))[0])
    return {
        "swd": float(sliced_wasserstein(real[:, :n_img], samples[:, :n_img], **SWD_OPTIONS).mean()),
        "diversity": float(ms_ssim_diversity(samples[:, :n_img])),
        "fg_error": float((fractions - real_fraction).abs().mean()),
        "fg_real": real_fraction,
        "fg_mean": float(fractions.mean()),
        "rec_mse": float(torch.mean((model.reconstruct().cpu() - real) ** 2)),
    }


def model_path(data: str, max_size: int, schedule: str, overrides: str, iters: int, threads: int, seed: int,
               device: str = "cpu") -> Path:
    """Where ``run`` keeps the model of one recipe and seed (``overrides`` as ``--set`` gives them)."""
    where = "" if device == "cpu" else f"_{device.split(':')[0]}"
    variant = "" if not overrides else "_" + overrides.replace("optim.", "").replace("=", "").replace(",", "_")
    return MODELS / f"{data}_{max_size}_{schedule}{variant}_{iters}_t{threads}_s{seed}{where}.pt"


def save_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON atomically: a run stopped mid-write leaves the old records whole."""
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    pair = load_pair(args.data)
    for iters in args.iters:
        key = {"data": args.data, "max_size": args.max_size, "schedule": args.schedule, "iters": iters,
               "threads": args.threads, "seed": args.seed, "device": args.device, "overrides": args.set}
        path = model_path(args.data, args.max_size, args.schedule, args.set, iters, args.threads, args.seed,
                          args.device)
        config = make_config(pair, args.max_size, args.schedule, iters, args.seed, args.set)
        resume = path.exists()
        if resume:  # a schedule may change under its name: never resume (or reuse) a model of another recipe
            differences = config_differences(SinGANSegConfig.from_json(read_checkpoint(path)["config"]), config)
            if differences:
                raise SystemExit(f"{path.name} was trained with another recipe ({'; '.join(map(str, differences))}): "
                                 "move it away or name the run's options with --set")
        start = time.perf_counter()
        model = SinGANSegTrainer(config, device=args.device, progress=not args.quiet).fit(
            pair.real, pair.intensity, pair.labels, path, resume=resume)
        wall = time.perf_counter() - start
        log = (read_checkpoint(path).get("training") or {}).get("log", [])
        real = build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
        record = {**key, "scales": model.num_scales, "shape": list(model.shapes[-1]),
                  "train_seconds": round(sum(r["seconds"] for r in log), 2),
                  "iterations_run": [r.get("iterations", iters) for r in log],
                  "wall_seconds_this_call": round(wall, 2), "torch": torch.__version__, "cpu": cpu_name(),
                  "date": time.strftime("%Y-%m-%d"), **measure(model, real, args.num, args.seed)}
        records = json.loads(RECORDS.read_text()) if RECORDS.exists() else []  # read late: runs may go in parallel
        defaults = {"device": "cpu", "overrides": ""}
        records = [r for r in records if any(r.get(k, defaults.get(k)) != v for k, v in key.items())] + [record]
        save_json(RECORDS, records)
        print(json.dumps(record), flush=True)


TIMINGS = RESULTS / "time_to_quality_timings.json"
# overrides that change how many iterations run, their learning rates, loss weights or the initial weights, not the
# cost of one iteration
COST_NEUTRAL = {"optim.plateau_window", "optim.plateau_tolerance", "optim.lr_decay_at", "optim.lr_gamma",
                "optim.lr_g", "optim.lr_d", "optim.iters_per_scale", "optim.coarse.iters_per_scale",
                "optim.coarse.plateau_window", "optim.coarse.plateau_tolerance", "optim.widen_from_previous",
                "optim.rec_weight", "optim.coarse.rec_weight", "optim.gp_weight", "optim.noise_amp_init"}


def timing(args: argparse.Namespace) -> None:
    """Seconds per iteration at every scale, on an idle machine, for each (data, size, schedule) of the runs."""
    from bench_grouped import seconds_per_iteration

    torch.set_num_threads(args.threads)
    records = json.loads(RECORDS.read_text())
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    configs = {}
    for data, size, schedule, overrides in {(r["data"], r["max_size"], r["schedule"], r.get("overrides", ""))
                                            for r in records}:
        key = f"{data}/{size}/{schedule}{overrides and '+' + overrides}/{args.device}/{args.threads}"
        configs[key] = (data, size, schedule, overrides)
    if not any(key.startswith(args.only) for key in configs):
        raise SystemExit(f"timing --only {args.only!r}: no run's config starts with it (keys look like "
                         f"{min(configs)})")
    for key, (data, size, schedule, overrides) in sorted(configs.items()):
        if (key in timings and not args.again) or not key.startswith(args.only):
            continue
        base = f"{data}/{size}/{schedule}/{args.device}/{args.threads}"
        if overrides and base in timings and all(item.split("=")[0] in COST_NEUTRAL for item in overrides.split(",")):
            timings[key] = timings[base]  # when to stop, not what an iteration does: the schedule's own timing
            print(key, "= timing of", base, flush=True)
            continue
        pair = load_pair(data)
        config = make_config(pair, size, schedule, 1, 0, overrides)
        _, seconds = seconds_per_iteration(config, [(pair.real, pair)], args.device, args.measure)
        timings[key] = [round(s, 5) for s in seconds]
        print(key, [round(s, 4) for s in seconds], flush=True)
    save_json(TIMINGS, timings)


def estimated_seconds(record: dict, timings: dict, device: str, threads: int) -> float | None:
    """Training seconds on an idle machine: iterations run at each scale x measured seconds per iteration there."""
    overrides = record.get("overrides", "")
    seconds = timings.get(f"{record['data']}/{record['max_size']}/{record['schedule']}"
                          f"{overrides and '+' + overrides}/{device}/{threads}")
    if seconds is None:
        return None
    return sum(n * s for n, s in zip(record["iterations_run"], seconds))


METRICS = ("swd", "diversity", "fg_error", "rec_mse")


def variant_rows(records: list[dict]) -> list[dict]:
    """One row per (data, size, schedule, overrides, iterations): the mean and sd of every figure over the training
    seeds run (models of one recipe differ a lot by seed, so single runs are not compared)."""
    rows: dict[tuple, list[dict]] = {}
    for r in records:
        rows.setdefault((r["data"], r["max_size"], r["schedule"], r.get("overrides", ""), r["iters"]), []).append(r)
    out = []
    for (data, size, schedule, overrides, iters), runs in rows.items():
        row = {"data": data, "max_size": size, "schedule": schedule, "overrides": overrides, "iters": iters,
               "seeds": sorted(r["seed"] for r in runs), "iterations_run": [r["iterations_run"] for r in runs]}
        for name in (*METRICS, "idle_seconds"):
            values = [r[name] for r in runs if r.get(name) is not None]
            row[name + "_values"] = values
            row[name] = float(np.mean(values)) if values else None
            row[name + "_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out.append(row)
    out.sort(key=lambda r: (r["data"], r["max_size"], r["schedule"] != "faithful", r["overrides"], r["iters"]))
    return out


def ratio_interval(values: list[float], baseline: list[float], resamples: int = 10000) -> tuple[float, float, float]:
    """Ratio of means and its 95 % percentile-bootstrap interval, resampling the training seeds of each side
    independently (rough with a few seeds, but it shows how far a ratio can move).

    Args:
        values: one figure of the runs of a recipe, one per training seed.
        baseline: the same figure of the baseline's runs.
        resamples: bootstrap resamples (fixed random seed, so the table is reproducible).

    Returns:
        ``(mean(values) / mean(baseline), low, high)``.
    """
    rng = np.random.default_rng(0)
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    ratios = (rng.choice(a, (resamples, a.size)).mean(1) / rng.choice(b, (resamples, b.size)).mean(1))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(a.mean() / b.mean()), float(low), float(high)


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's target, per data and size where both shipped schedules have several seeds: each figure of the
    fast schedule within 10 % of the faithful schedule's (lower is better for all but diversity) in at most 1/10 of
    its time."""
    title = "## The fast schedule against the faithful one (target: each figure within 10 %, at most 1/10 of the time)"
    lines = ["", title, "", "Ratio of means, fast / faithful, with a 95 % bootstrap interval over the training seeds.",
             "", "| data | max size | seeds fast / faithful | time ratio | SWD | diversity | fg error | rec MSE |",
             "| --- " * 8 + "|"]
    for fast in rows:
        if (fast["schedule"], fast["overrides"]) != ("fast", "") or len(fast["seeds"]) < 2:
            continue
        base = next((b for b in rows if (b["data"], b["max_size"], b["schedule"], b["overrides"]) ==
                     (fast["data"], fast["max_size"], "faithful", "")), None)
        if base is None or len(base["seeds"]) < 2:
            continue
        cells = []
        for metric in METRICS:
            ratio, low, high = ratio_interval(fast[metric + "_values"], base[metric + "_values"])
            met = abs(ratio - 1) <= 0.1 if metric == "diversity" else ratio <= 1.1
            cells.append(f"{ratio:.2f} [{low:.2f}, {high:.2f}] {'met' if met else 'missed'}")
        time_ratio = ""
        if fast["idle_seconds"] and base["idle_seconds"]:
            time_ratio = f"1/{base['idle_seconds'] / fast['idle_seconds']:.1f}"
        lines.append(f"| {fast['data']} | {fast['max_size']} | {len(fast['seeds'])} / {len(base['seeds'])} | "
                     f"{time_ratio} | " + " | ".join(cells) + " |")
    return lines


def _mean_sd(row: dict, name: str, digits: int) -> str:
    sd = row[name + "_sd"]
    return f"{row[name]:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


def table(args: argparse.Namespace) -> None:
    from monai_singanseg.visualize import pyplot, save_figure

    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    records = json.loads(RECORDS.read_text())
    for r in records:
        r["idle_seconds"] = estimated_seconds(r, timings, args.device, args.threads)
    rows = variant_rows(records)
    lines = [f"# Time to quality (start scale 0 samples vs the real pair; {args.device}, {args.threads} threads)", "",
             ("Training time: iterations run at each scale x seconds per iteration measured there on an idle "
             "machine (`bench_time_to_quality.py timing`). Figures: mean ± sd over the training seeds listed. "
             "Ratios: mean over mean, against faithful 2000 of the same data and size."),
             "", ("| data | max size | schedule | seeds | iters/scale (run, first seed) | training min | SWD "
                  "| diversity | fg error | rec MSE | time ratio | SWD / div / fg / rec ratio |"), "| --- " * 12 + "|"]
    for r in rows:
        base = next((b for b in rows if (b["data"], b["max_size"], b["schedule"], b["overrides"], b["iters"]) ==
                     (r["data"], r["max_size"], "faithful", "", 2000)), None)
        minutes = "" if r["idle_seconds"] is None else f"{r['idle_seconds'] / 60:.1f}"
        ratios = time_ratio = ""
        if base is not None and r is not base:
            ratios = " / ".join(f"{r[m] / base[m]:.2f}" for m in METRICS)
            if r["idle_seconds"] and base["idle_seconds"]:
                time_ratio = f"1/{base['idle_seconds'] / r['idle_seconds']:.1f}"
        run = ",".join(str(n) for n in r["iterations_run"][0])
        schedule = r["schedule"] + (f" ({r['overrides']})" if r["overrides"] else "")
        seeds = ",".join(str(s) for s in r["seeds"])
        lines.append(f"| {r['data']} | {r['max_size']} | {schedule} | {seeds} | {r['iters']} ({run}) | {minutes} | "
                     f"{_mean_sd(r, 'swd', 4)} | {_mean_sd(r, 'diversity', 3)} | {_mean_sd(r, 'fg_error', 4)} | "
                     f"{_mean_sd(r, 'rec_mse', 5)} | {time_ratio} | {ratios} |")
    text = "\n".join(lines + target_lines(rows)) + "\n"
    (RESULTS / "time_to_quality.md").write_text(text)
    print(text)
    groups = sorted({(r["data"], r["max_size"]) for r in rows})
    labels = sorted({(r["schedule"], r["overrides"]) for r in rows})
    import matplotlib

    plt = pyplot()
    # one colour per recipe in every panel: the two shipped schedules black and blue, the variants from tab20
    palette = [matplotlib.colormaps["tab20"](i) for i in range(2, 20)]
    variants = [label for label in labels if label[1]]
    colours = {("faithful", ""): "black", ("fast", ""): "tab:blue",
               **{label: palette[i % len(palette)] for i, label in enumerate(variants)}}
    fig, axes = plt.subplots(len(groups), len(METRICS), figsize=(4 * len(METRICS), 3 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, metric in zip(row, METRICS):
            for schedule, overrides in labels:
                points = sorted((r for r in rows if (r["data"], r["max_size"]) == group and r["idle_seconds"]
                                 and (r["schedule"], r["overrides"]) == (schedule, overrides)),
                                key=lambda r: r["idle_seconds"])
                if points:
                    shipped = not overrides
                    ax.errorbar([p["idle_seconds"] / 60 for p in points], [p[metric] for p in points],
                                yerr=[p[metric + "_sd"] or 0.0 for p in points], capsize=3,
                                fmt="o-" if schedule == "faithful" else "s-", color=colours[(schedule, overrides)],
                                markersize=8 if shipped else 5, zorder=3 if shipped else 2,
                                label=f"{schedule} {overrides.replace('optim.', '')}".strip()
                                + (" (shipped)" if shipped else ""))
            ax.set_xscale("log")
            ax.set_xlabel("training minutes (log)")
            ax.set_title(f"{group[0]} {group[1]} px: {metric} (mean ± sd over seeds)", fontsize=9)
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, RESULTS / "time_to_quality.png")


HYBRIDS = RESULTS / "time_to_quality_hybrids.json"


def _saved_model(name: str) -> SinGANSeg:
    """A model of ``results/models/time_to_quality`` by file name; a missing one stops with one line."""
    from monai_singanseg.checkpoint import load_model

    if not (MODELS / name).is_file():
        raise SystemExit(f"{MODELS / name}: no such model (train it with the run command first)")
    return load_model(MODELS / name)[0]


def _with_scales(host: SinGANSeg, donor: SinGANSeg, scales: range) -> SinGANSeg:
    """A copy of ``host`` whose generators (and noise amplitudes) at ``scales`` are ``donor``'s; the reconstruction
    path starts with the noise of whichever model gives the coarsest scale."""
    import copy

    model = copy.deepcopy(host)
    for scale in scales:
        model.generators[scale] = copy.deepcopy(donor.generators[scale])
        model.noise_amps[scale] = donor.noise_amps[scale]
    if 0 in scales:
        model.fixed_noise.copy_(donor.fixed_noise)
    return model


def hybrid(args: argparse.Namespace) -> None:
    """Which scales carry a quality gap between two trained models of one pair: sample from hybrids that take the
    generators (and noise amplitudes) of the scales below k from ``--coarse-from`` and the rest from ``--fine-from``,
    for every k. A scale was trained on its own coarser scales' outputs, so a mixed pyramid is a diagnostic, not a
    model; where the hybrid with one model's coarse scales matches that model, the other's fine scales are not the
    gap."""
    torch.set_num_threads(args.threads)
    coarse, fine = (_saved_model(name) for name in (args.coarse_from, args.fine_from))
    if coarse.shapes != fine.shapes:
        raise SystemExit("the two models have different pyramids")
    real = build_pyramid(load_pair(args.data).real.unsqueeze(0), coarse.shapes)[-1]
    rows = []
    for k in range(coarse.num_scales + 1):
        model = _with_scales(coarse, fine, range(k, coarse.num_scales))
        rows.append({"coarse_from": args.coarse_from, "fine_from": args.fine_from, "coarse_scales": k,
                     **measure(model, real, args.num, args.seed)})
        print(f"scales < {k} from {args.coarse_from}, the rest from {args.fine_from}:",
              {m: round(rows[-1][m], 4) for m in METRICS}, flush=True)
    records = json.loads(HYBRIDS.read_text()) if HYBRIDS.exists() else []
    records = [r for r in records if (r["coarse_from"], r["fine_from"]) != (args.coarse_from, args.fine_from)]
    save_json(HYBRIDS, records + rows)


COARSEST = RESULTS / "time_to_quality_coarsest.json"


def coarsest(args: argparse.Namespace) -> None:
    """Recipes for the coarsest scale alone, where the layout of a sample is drawn: train scale 0 only with
    ``--schedule`` / ``--set`` for each ``--seeds``, and measure it in place of ``--host``'s scale 0 (the host's
    finer scales were trained on its own scale 0, so compare recipes inside one host, seed by seed). Seconds are
    this call's wall time for the scale."""
    import tempfile

    torch.set_num_threads(args.threads)
    host = _saved_model(args.host)
    pair = load_pair(args.data)
    real = build_pyramid(pair.real.unsqueeze(0), host.shapes)[-1]
    configs = [make_config(pair, host.config.pyramid.max_size, args.schedule,
                           SinGANSegConfig.for_schedule(args.schedule).optim.iters_per_scale, seed, args.set)
               for seed in args.seeds]
    shapes = scale_shapes(pair.real.shape[1:], configs[0].pyramid)
    if shapes != host.shapes:  # before training: a scale 0 of another pyramid cannot go into this host
        raise SystemExit(f"{args.host} has another pyramid than this recipe ({host.shapes} vs {shapes})")
    records = json.loads(COARSEST.read_text()) if COARSEST.exists() else []
    for seed, config in zip(args.seeds, configs):
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            scale0 = SinGANSegTrainer(config, progress=False, stop_after=1).fit(
                pair.real, pair.intensity, pair.labels, Path(scratch) / "scale0.pt")
            seconds = time.perf_counter() - start
        key = {"data": args.data, "host": args.host, "schedule": args.schedule, "overrides": args.set, "seed": seed}
        row = {**key, "seconds": round(seconds, 1),
               **measure(_with_scales(host, scale0, range(1)), real, args.num, args.seed)}
        print(json.dumps(row), flush=True)
        records = [r for r in records if any(r.get(k) != v for k, v in key.items())] + [row]
        save_json(COARSEST, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", choices=("nuclei", "mni"), default="nuclei")
    r.add_argument("--max-size", type=int, default=96)
    r.add_argument("--schedule", choices=("faithful", "fast"), default="fast")
    r.add_argument("--iters", type=int, nargs="+", default=[2000])
    r.add_argument("--threads", type=int, default=1, help="torch threads (1: a busy core makes more threads crawl)")
    r.add_argument("--num", type=int, default=24)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--set", default="", help="config overrides, e.g. optim.generator_steps=2,optim.gp_every=2 "
                   "(a tuple's items joined by +: network.critic_augment=translation+cutout)")
    r.add_argument("--quiet", action="store_true")
    for name in ("timing", "table"):
        t = sub.add_parser(name)
        t.add_argument("--threads", type=int, default=1, help="the runs' threads, to find their records and timings")
        t.add_argument("--device", default="cpu")
        t.add_argument("--measure", type=int, default=4, help="iterations timed per scale (timing)")
        t.add_argument("--again", action="store_true", help="measure configs that have timings already (timing)")
        t.add_argument("--only", default="", help="measure only the configs whose key starts with this, e.g. "
                       "mni/96/faithful (timing; a run without it measures every config that lacks a timing)")
    h = sub.add_parser("hybrid")
    h.add_argument("--data", choices=("nuclei", "mni"), default="nuclei")
    h.add_argument("--coarse-from", required=True, help="checkpoint name in results/models/time_to_quality")
    h.add_argument("--fine-from", required=True)
    h.add_argument("--threads", type=int, default=1)
    h.add_argument("--num", type=int, default=24)
    h.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("coarsest")
    c.add_argument("--data", choices=("nuclei", "mni"), default="nuclei")
    c.add_argument("--host", required=True, help="checkpoint name in results/models/time_to_quality")
    c.add_argument("--schedule", choices=("faithful", "fast"), default="fast")
    c.add_argument("--set", default="", help="config overrides, as for run")
    c.add_argument("--seeds", type=int, nargs="+", default=[0])
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--num", type=int, default=24)
    c.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    {"run": run, "timing": timing, "table": table, "hybrid": hybrid, "coarsest": coarsest}[args.command](args)


if __name__ == "__main__":
    main()
