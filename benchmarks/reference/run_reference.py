"""Benchmark the reference SinGAN-Seg code (PyPI package ``singan-seg-polyp`` 1.0.7, MIT) on the CPU.

Run it with the reference venv's interpreter (``bash benchmarks/reference/setup_reference_venv.sh`` makes it)::

    benchmarks/reference/.venv-ref/bin/python benchmarks/reference/run_reference.py \
        --image data/nuclei/nuclei_image.png --label data/nuclei/nuclei_label.png \
        --max-size 40 --iters 3 --num-samples 4 --out /tmp/reference.json

Nothing of the reference is copied here: the installed package is imported and its own functions are called,
following the flow of SinGAN-Seg's ``main_train.py`` (``post_config`` -> ``read_image`` -> ``adjust_scales2image``
-> ``training.train`` -> ``manipulate.SinGAN_generate``):

1. The 4-channel input the reference trains on (SinGAN-Seg's ``polyp_with_4_channels.png``: R, G, B and the mask as
   the fourth channel) is written as an RGBA PNG into a scratch working directory; a grayscale image is replicated
   to RGB. The reference's own ``functions.read_image`` reads it back with ``--nc_im 4 --nc_z 4``.
2. Options come from the package's own ``config.get_arguments()`` defaults, which are the reference recipe:
   scale factor 0.75, min_size 25, nfc = min_nfc = 32 (``train`` doubles them every 4 scales, capped at 128),
   5 layers of 3x3 convolutions, Adam lr 5e-4 (beta1 0.5) for D and G, 3 D steps and 3 G steps per iteration,
   gradient-penalty weight 0.1, reconstruction weight alpha 10, noise_amp 0.1. Only ``--max_size``, ``--niter``
   (= ``--iters``), ``--manualSeed`` and ``--not_cuda`` are set from the command line.
3. ``training.train`` runs unmodified; it also writes what it always writes (PNG previews at iteration 0 and at the
   last iteration, per-scale ``netG.pth``/``netD.pth``/``z_opt.pth``, and the pickled pyramid) into the scratch
   directory, so those writes are part of its cost. Their time is measured and reported separately.
4. ``manipulate.SinGAN_generate`` draws ``--num-samples`` samples from start scale 0 at the training size, as
   ``main_train.py`` does right after training; it writes two PNGs per sample (image and mask), as it always does.

Run-time patches (all undone before exit; none changes what the reference computes):

- ``torchvision`` stand-in: ``singan_seg_polyp.SinGAN.manipulate`` (home of ``SinGAN_generate``) imports
  ``torchvision.datasets``, ``torchvision.transforms`` and ``torchvision.utils`` at module level but never uses
  them. Released torchvision wheels do not import beside the CPU torch 2.13.0 build, so empty modules with those
  four names are put in ``sys.modules`` before that import; touching any attribute of them raises, so a use would
  show up as an error rather than silently.
- Timing shim: ``singan_seg_polyp.SinGAN.training.train_single_scale`` is replaced, in that module's namespace
  only (``train`` looks it up there), by a wrapper that calls the original with the same arguments, returns its
  result unchanged and records the wall time of the call, i.e. one scale's ``--iters`` iterations including that
  function's own set-up and file writes.
- I/O accounting: ``matplotlib.pyplot.imsave`` and ``torch.save`` are wrapped to add up the time spent inside them
  (calls pass through unchanged), so figures without the reference's file writes can be reported too.

Warm-up (not a patch): one throwaway ``torch.optim.Adam`` is built before timing, because the first one lazily
imports ``torch._dynamo`` (seconds on this machine), which would otherwise be charged to scale 0.

Not patched: the training loop itself. The 1.0.7 package already carries SinGAN-Seg's workaround for the
retain_graph / in-place failure that original SinGAN hits on PyTorch >= 1.5 in the generator steps:
``optimizerG.step()`` sits after the ``Gsteps`` loop while ``netG.zero_grad()`` stays inside it. It therefore
runs as shipped on torch 2.13.0, and each iteration does 3 generator forward/backward passes of which only the last
one's gradients reach the single generator optimizer step (one effective G step). Its cost is measured as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

IMPLEMENTATION = "singan-seg-polyp 1.0.7"
INPUT_NAME = "input.png"  # the reference strips the last 4 characters of this name for its folder names
TORCHVISION_STANDIN = ("torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.utils")

PATCHES = [
    ("torchvision stand-in: empty modules torchvision, torchvision.datasets, torchvision.transforms and "
    "torchvision.utils are registered in sys.modules before importing singan_seg_polyp.SinGAN.manipulate, which "
    "imports them at module level but never uses them on the SinGAN_generate path; any attribute access on them "
    "raises. Reason: released torchvision wheels do not import beside the CPU torch 2.13.0 build."),
    ("timing shim: singan_seg_polyp.SinGAN.training.train_single_scale is wrapped (in that module's namespace) to "
    "record the wall time of each scale; arguments and return value pass through unchanged."),
    ("I/O accounting: matplotlib.pyplot.imsave and torch.save are wrapped to add up the time spent in them; calls "
    "pass through unchanged."),
]

NOTES = [
    ("Training loop not patched: singan-seg-polyp 1.0.7 already has SinGAN-Seg's workaround for the generator-step "
    "retain_graph/in-place failure (optimizerG.step() after the Gsteps loop, netG.zero_grad() inside it), so it runs "
    "as shipped on torch 2.13.0: 3 generator forward/backward passes per iteration, one effective G step."),
    ("seconds_per_iter is the wall time of the reference's train_single_scale for one scale divided by --iters; it "
    "includes that function's own per-scale set-up and its file writes (PNG previews at the first and last "
    "iteration, torch.save of z_opt/netG/netD). io_seconds gives the part spent in plt.imsave/torch.save."),
    ("Before timing, one throwaway torch.optim.Adam is built so that its one-time lazy import of torch._dynamo "
    "(seconds) is not charged to scale 0."),
    "total_train_seconds is the wall time of training.train (all scales, model construction, pyramid pickling).",
    ("samples_per_second is for the reference's SinGAN_generate, which keeps every sample of a scale in memory and "
    "writes an image PNG and a mask PNG per sample at the last scale; "
    "samples_per_second_excluding_png_writes leaves out the time spent in plt.imsave."),
]


def _die(msg: str) -> None:
    print(f"run_reference.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


class IOClock:
    """Adds up the time spent inside wrapped callables; restores them on ``close``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def close(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)


@contextlib.contextmanager
def torchvision_standin():
    """Empty ``torchvision`` modules, only so that ``manipulate`` imports; any use of them raises."""

    def unavailable(attr: str):
        raise AttributeError(f"torchvision stand-in (run_reference.py): {attr!r} is not provided")

    saved = {name: sys.modules.get(name) for name in TORCHVISION_STANDIN}
    modules = {}
    for name in TORCHVISION_STANDIN:
        mod = types.ModuleType(name, "stand-in made by benchmarks/reference/run_reference.py")
        mod.__getattr__ = unavailable
        modules[name] = mod
        sys.modules[name] = mod
    for name in TORCHVISION_STANDIN[1:]:
        setattr(modules["torchvision"], name.rsplit(".", 1)[1], modules[name])
    try:
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_four_channel_input(image_path: Path, label_path: Path, dest: Path) -> dict:
    """RGB image + mask as one RGBA uint8 PNG, the input layout SinGAN-Seg trains on."""
    import numpy as np
    from skimage import io as skio
    from skimage.util import img_as_ubyte

    image = skio.imread(str(image_path))
    label = skio.imread(str(label_path))
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # drop an alpha channel
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)  # grayscale -> RGB, as the reference's read_image does
    if image.ndim != 3 or image.shape[2] != 3:
        _die(f"--image must be a grayscale or RGB(A) picture, got shape {image.shape}")
    if label.ndim == 3:
        label = label[:, :, 0]
    if label.shape != image.shape[:2]:
        _die(f"--label shape {label.shape} does not match --image shape {image.shape[:2]}")
    if image.dtype != np.uint8:
        image = img_as_ubyte(image)
    if label.max() <= 1:  # a 0/1 label map -> the 0/255 masks SinGAN-Seg trains on
        label = label.astype(np.uint8) * 255
    elif label.dtype != np.uint8:
        label = img_as_ubyte(label)
    rgba = np.concatenate([image, label[:, :, None]], axis=-1).astype(np.uint8)
    skio.imsave(str(dest), rgba, check_contrast=False)
    return {"image": str(image_path), "label": str(label_path), "shape": list(rgba.shape[:2]),
            "mask_values": [int(v) for v in np.unique(label)[:8]]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True, type=Path, help="training image (PNG, grayscale or RGB)")
    p.add_argument("--label", required=True, type=Path, help="its segmentation mask (PNG, 0/255 or 0/1)")
    p.add_argument("--max-size", required=True, type=int, help="longest side of the finest scale (reference max_size)")
    p.add_argument("--iters", required=True, type=int, help="training iterations per scale (reference niter)")
    p.add_argument("--num-samples", required=True, type=int, help="samples drawn after training")
    p.add_argument("--out", required=True, type=Path, help="JSON file to write")
    p.add_argument("--seed", type=int, default=0, help="reference manualSeed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the reference's outputs (TrainedModels/, Output/) here instead of a deleted temp dir")
    args = p.parse_args(argv)
    if args.iters < 1 or args.num_samples < 1:
        p.error("--iters and --num-samples must be >= 1")
    for path in (args.image, args.label):
        if not path.is_file():
            p.error(f"no such file: {path}")
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict:
    try:
        import torch
        from singan_seg_polyp import config as ref_config
        from singan_seg_polyp.SinGAN import functions, training
    except ImportError as exc:
        _die(f"{exc}. Run benchmarks/reference/setup_reference_venv.sh, then use "
             "benchmarks/reference/.venv-ref/bin/python")
    import matplotlib.pyplot as plt

    if args.threads:
        torch.set_num_threads(args.threads)
    # Warm-up outside the timed region: the first torch.optim.Adam() lazily imports torch._dynamo, a one-time cost
    # of seconds that would otherwise land in scale 0's seconds_per_iter. The reference itself is not touched.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])

    (workdir / "Input").mkdir(parents=True, exist_ok=True)
    input_info = write_four_channel_input(args.image.resolve(), args.label.resolve(), workdir / "Input" / INPUT_NAME)
    os.chdir(workdir)  # the reference writes TrainedModels/ and Output/ relative to the working directory

    # the reference's own options, extended exactly as SinGAN-Seg's main_train.py does
    parser = ref_config.get_arguments()
    parser.add_argument("--input_dir", default="Input")
    parser.add_argument("--input_name", default=INPUT_NAME)
    parser.add_argument("--mode", default="train")
    opt = parser.parse_args([
        "--not_cuda", "--nc_z", "4", "--nc_im", "4",
        "--max_size", str(args.max_size), "--niter", str(args.iters), "--manualSeed", str(args.seed),
    ])

    with torchvision_standin():
        from singan_seg_polyp.SinGAN import manipulate

    io_clock = IOClock()
    io_clock.wrap(plt, "imsave")
    io_clock.wrap(torch, "save")

    scales: list[dict] = []
    original_train_single_scale = training.train_single_scale

    def timed_train_single_scale(netD, netG, reals, Gs, *rest, **kwargs):
        scale = len(Gs)
        io_before = io_clock.seconds
        start = time.perf_counter()
        result = original_train_single_scale(netD, netG, reals, Gs, *rest, **kwargs)
        seconds = time.perf_counter() - start
        shape = reals[scale].shape
        scales.append({
            "scale": scale,
            "shape": [int(shape[2]), int(shape[3])],
            "nfc": int(opt.nfc),
            "seconds": seconds,
            "seconds_per_iter": seconds / opt.niter,
            "io_seconds": io_clock.seconds - io_before,
        })
        print(f"[reference] scale {scale} {tuple(shape[2:])}: {seconds / opt.niter:.4f} s/iter", file=sys.stderr)
        return result

    training.train_single_scale = timed_train_single_scale
    try:
        # the reference prints its networks and progress on stdout; keep our stdout for the summary
        with contextlib.redirect_stdout(sys.stderr):
            opt = functions.post_config(opt)
            Gs, Zs, reals, NoiseAmp = [], [], [], []
            real = functions.read_image(opt)
            functions.adjust_scales2image(real, opt)
            start = time.perf_counter()
            training.train(opt, Gs, Zs, reals, NoiseAmp)
            total_train = time.perf_counter() - start
            rss_after_training = peak_rss_mib()

            io_before = io_clock.seconds
            start = time.perf_counter()
            sample = manipulate.SinGAN_generate(Gs, Zs, reals, NoiseAmp, opt, gen_start_scale=0,
                                                num_samples=args.num_samples)
            sample_seconds = time.perf_counter() - start
            sample_io = io_clock.seconds - io_before
    finally:
        training.train_single_scale = original_train_single_scale
        io_clock.close()

    return {
        "implementation": IMPLEMENTATION,
        "max_size": args.max_size,
        "iters": args.iters,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "device": "cpu",
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "input": input_info,
        "recipe": {
            "nc_im": opt.nc_im, "nc_z": opt.nc_z, "scale_factor_init": opt.scale_factor_init,
            "scale_factor_effective": opt.scale_factor, "min_size": opt.min_size, "nfc_init": opt.nfc_init,
            "min_nfc_init": opt.min_nfc_init, "num_layer": opt.num_layer, "ker_size": opt.ker_size,
            "lr_g": opt.lr_g, "lr_d": opt.lr_d, "beta1": opt.beta1, "Dsteps": opt.Dsteps, "Gsteps": opt.Gsteps,
            "alpha": opt.alpha, "lambda_grad": opt.lambda_grad, "noise_amp_init": opt.noise_amp_init,
        },
        "num_scales": len(scales),
        "scales": scales,
        "total_train_seconds": total_train,
        "train_io_seconds": sum(s["io_seconds"] for s in scales),
        "sample_shape": [int(sample.shape[2]), int(sample.shape[3])],
        "sample_seconds": sample_seconds,
        "samples_per_second": args.num_samples / sample_seconds,
        "samples_per_second_excluding_png_writes": args.num_samples / max(sample_seconds - sample_io, 1e-9),
        "peak_rss_mib_after_training": rss_after_training,
        "peak_rss_mib": peak_rss_mib(),
        "patches": PATCHES,
        "notes": NOTES,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    cwd = os.getcwd()
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            result = run(args, args.workdir.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="singan-ref-") as tmp:
                result = run(args, Path(tmp))
                os.chdir(cwd)  # leave the temp dir before it is deleted
    finally:
        os.chdir(cwd)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    per_iter = ", ".join(f"{s['seconds_per_iter']:.4f}" for s in result["scales"])
    print(f"{IMPLEMENTATION}: s/iter per scale [{per_iter}], train {result['total_train_seconds']:.2f} s, "
          f"{result['samples_per_second']:.2f} samples/s, peak RSS {result['peak_rss_mib']:.0f} MiB -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
