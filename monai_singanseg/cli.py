"""The ``singanseg`` command: ``train`` a model on one image + mask, ``train-many`` over a datalist, ``sample``.

``train-diffusion`` trains the second generator (a pair-diffusion model, optionally one per k-means cluster),
``train-stylegan`` the third (a conditional StyleGAN2 of a datalist's pairs); ``sample`` and ``report`` take a
checkpoint of any kind.

Bad input ends with one line ``singanseg: error: <file>: <problem>`` and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from monai_singanseg.config import (
    ACTS,
    AUGMENT_OPS,
    CRITICS,
    NORMS,
    OUTPUT_FORMATS,
    PADDINGS,
    SCHEDULES,
    STYLE_CONTENT_STYLE,
    STYLE_METHODS,
    STYLE_STEPS,
    NetworkConfig,
    PyramidConfig,
    SinGANSegConfig,
)
from monai_singanseg.diffusion.config import CLUSTER_FEATURES, SAMPLERS, DiffusionConfig, DiffusionSampling
from monai_singanseg.errors import SamplesInterrupted, SinGANSegInputError
from monai_singanseg.stylegan.config import DESIGNS, StyleGANConfig

__all__ = ["build_parser", "main"]

logger = logging.getLogger("monai_singanseg")


def _whole(text: str) -> int:
    """``text`` as an int; argparse would name the parsing function ("invalid _class_count value") otherwise."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _class_count(text: str) -> int:
    value = _whole(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a class-index mask has at least 2 classes (background and one), got {value}")
    return value


def _slice_index_value(text: str) -> int | str:
    if text == "largest":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a slice number or 'largest', got {text!r}") from None


def _device(name: str | None, default: str = "cpu") -> str:
    """``name`` checked: a device torch knows and this machine has (one line instead of a traceback later)."""
    from monai_singanseg.devices import check_device

    name = name or default
    check_device(name, "--device")
    return name


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` for the commands that compute (one option, one help text; applied in :func:`main`)."""
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="CPU threads torch uses (default: torch's choice, which follows OMP_NUM_THREADS when "
                             "set); on a machine busy with other work 1 is often much faster (docs/threads.md)")


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads, restored afterwards (``main`` may be called in-process: tests,
    notebooks). ``None``: the cores other work leaves free when the machine is busy (said in one line), else torch's
    own choice, without importing torch for it."""
    if threads is None:
        from monai_singanseg.threads import busy_machine

        busy = busy_machine()  # one reading of the load: the message quotes the number the choice was made from
        if busy is None:
            yield
            return
        threads = busy.threads
        logger.warning("the machine is busy (load %.1f on %d cores): using %d CPU thread(s); --threads N or "
                       "OMP_NUM_THREADS to choose (docs/threads.md)", busy.load, busy.cores, threads)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


SEED_MAX = 2**32 - 1  # numpy's RandomState (harmonize's location draw) takes no more; torch takes all of these


def _check_seed(seed: int | None) -> None:
    """One range of ``--seed`` for every command: a seed one command takes and another crashes on (with a
    traceback) cannot reproduce a run across them."""
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise SinGANSegInputError(f"--seed {seed}: a seed is an integer from 0 to {SEED_MAX}.")


def _check_output_file(out: str) -> Path:
    """``--out`` as a checkpoint path: refused when it names a folder (an existing one, or one written with a
    trailing slash, which Path drops: ``out/newdir/`` wrote a file named ``newdir``). Nothing is created here."""
    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        raise SinGANSegInputError(f"{out}: is a folder; --out takes a checkpoint file name (e.g. "
                                  f"{path / 'model.pt'}).")
    return path


@contextlib.contextmanager
def _output_folder(path: Path) -> Iterator[None]:
    """Create the folders above ``path`` and check that a file can be written there (before training, not after
    it); when the run then fails, remove those of them it created that are still empty."""
    made = [p for p in reversed(path.parents) if not p.exists()]
    probe = path.parent / f".{path.name}.write-test"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        _remove_empty(made)
        raise SinGANSegInputError(f"{path}: cannot write there ({err.strerror or err}).") from None
    try:
        yield
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (parents first in the list) that are empty, deepest first."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty (a checkpoint was written), or never made
            return


def build_parser() -> argparse.ArgumentParser:
    """The ``singanseg`` parser: one subcommand per job, each added by its own function."""
    parser = argparse.ArgumentParser(prog="singanseg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parsers(sub)
    _add_diffusion_parser(sub)
    _add_stylegan_parser(sub)
    _add_sample_parser(sub)
    _add_harmonize_parsers(sub)
    _add_report_parser(sub)
    return parser


def _add_train_parsers(sub) -> None:
    """``train`` (one SinGAN-Seg model) and ``train-many`` (one per datalist item)."""
    train = sub.add_parser("train", help="train one SinGAN-Seg model on an image (+ more channels) and its mask")
    train.add_argument("--image", nargs="+", required=True, help="image file(s); several are stacked as channels")
    train.add_argument("--label", required=True, help="mask: binary, one-hot, or class indices with --num-classes")
    train.add_argument("--out", required=True, help="checkpoint to write (updated after every scale)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from --out")
    train.add_argument("--tensorboard", default=None, metavar="DIR",
                       help="log per-scale losses and a sample per scale to TensorBoard (pip install tensorboard)")
    _add_training_options(train)
    _add_threads_option(train)

    many = sub.add_parser("train-many", help="one model per image/label pair of a Decathlon-style datalist "
                                             "(shards over ranks when launched with torchrun)")
    many.add_argument("datalist", help="datalist JSON; relative paths are relative to its folder")
    many.add_argument("--out", required=True, help="folder of checkpoints, one <image name>.pt per item")
    many.add_argument("--section", default="training", help="datalist key to train (default: training)")
    many.add_argument("--group-size", type=int, default=None,
                      help="train up to this many models with equal pyramid shapes side by side as one grouped "
                           "network (default: 1 on a CPU, where grouping does not pay, and 32 on a GPU)")
    _add_training_options(many)
    _add_threads_option(many)


def _add_sample_parser(sub) -> None:
    """``sample``: new pairs from a model of any kind, with the options of each (start scale, style, diffusion)."""
    sample = sub.add_parser("sample", help="write new image + label pairs from a trained model (either kind)")
    sample.add_argument("model", help="checkpoint written by 'singanseg train' or 'singanseg train-diffusion'")
    sample.add_argument("--num", type=int, required=True, help="number of pairs")
    sample.add_argument("--start-scale", type=int, default=0, help="0 = most diverse; higher keeps more layout")
    sample.add_argument("--diversity", type=float, default=1.0,
                        help="0..1: noise at the start scale mixed with the reconstruction's (1 = plain sampling; "
                        "lower keeps the training image's layout, a continuous knob between start scales 0 and 1)")
    sample.add_argument("--scale-ratio", type=float, nargs="+", default=None,
                        help="output size relative to the training size: one value, or one per axis")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="default: png for 2D images with 1 or 3 channels, else nii.gz")
    sample.add_argument("--device", default="cpu")
    sample.add_argument("--batch-size", type=_positive_int, default=16)
    sample.add_argument("--overwrite", action="store_true", help="replace existing sample files in --out")
    sample.add_argument("--quiet", action="store_true", help="no progress bar (--style vgg), warnings only")
    sample.add_argument("--style", choices=STYLE_METHODS, default="none",
                        help="refine the image towards the real image's style (labels never change): histogram "
                             "matching (no weights) or Gatys VGG style transfer (local VGG weights, 2D)")
    sample.add_argument("--style-image", nargs="+", default=None,
                        help="the training image file(s) to take the style from (default: the model's "
                             "reconstruction of its training image)")
    sample.add_argument("--style-weights", default=None,
                        help="VGG19/VGG16 torchvision state dict (default: $SINGANSEG_VGG_WEIGHTS, then the torch "
                             "hub cache); nothing is downloaded")
    content_style = ":".join(f"{w:g}" for w in STYLE_CONTENT_STYLE)
    sample.add_argument("--content-style", default=content_style,
                        help=f"content:style loss weights (default {content_style})")
    sample.add_argument("--style-steps", type=int, default=STYLE_STEPS,
                        help=f"L-BFGS iterations per sample (vgg; default {STYLE_STEPS})")
    _add_diffusion_sampling_options(sample)
    stylegan = sample.add_argument_group("StyleGAN models")
    stylegan.add_argument("--masks", nargs="+", default=None, metavar="MASK",
                          help="draw images for these mask files, in turn (a mask_then_image model)")
    stylegan.add_argument("--class-name", default=None, metavar="NAME",
                          help="draw pairs of this class (a model trained with --class-key; default: any)")
    stylegan.add_argument("--truncation", type=float, default=1.0,
                          help="0..1: pull the styles towards their mean (less variety, fewer failures; default 1)")
    _add_threads_option(sample)


def _add_harmonize_parsers(sub) -> None:
    """``harmonize`` and ``edit``: a donor lesion pasted into an image and redrawn by injection at a scale."""
    for name, mode in (("harmonize", "harmonize"), ("edit", "edit")):
        h = sub.add_parser(name, help=f"paste a donor lesion into the target and {name} it by injection at a scale")
        h.add_argument("model", help="checkpoint trained on the target (healthy) image")
        h.add_argument("--image", required=True, help="target image")
        h.add_argument("--donor-image", required=True)
        h.add_argument("--donor-label", required=True, help="mask of the lesion in the donor image")
        h.add_argument("--at-scale", type=int, required=True, help="scale of the injection (2-3 suit tumours)")
        h.add_argument("--out", required=True, help="output folder")
        h.add_argument("--location", type=int, nargs="+", default=None, help="lesion centre (voxel indices)")
        h.add_argument("--region", default=None, help="mask of allowed lesion centres (e.g. the brain)")
        h.add_argument("--seed", type=int, default=0)
        h.add_argument("--device", default="cpu")
        h.add_argument("--overwrite", action="store_true")
        _add_threads_option(h)
        h.set_defaults(mode=mode)


def _add_diffusion_parser(sub) -> None:
    diff = sub.add_parser("train-diffusion", help="train a pair-diffusion model (image + mask channels) on the pairs "
                                                  "of a datalist, or one per k-means cluster of them")
    source = diff.add_mutually_exclusive_group(required=True)
    source.add_argument("--datalist", help="Decathlon-style datalist JSON; relative paths are relative to its folder")
    source.add_argument("--image", nargs="+", help="one pair's image file(s) (several: stacked as channels)")
    diff.add_argument("--label", help="the mask of --image")
    diff.add_argument("--section", default="training", help="datalist key to train on (default: training)")
    diff.add_argument("--out", required=True,
                      help="checkpoint file (one model), or folder of cluster_<k>.pt + clusters.json (--clusters K)")
    diff.add_argument("--resume", action="store_true", help="continue interrupted trainings in --out")
    diff.add_argument("--clusters", type=_positive_int, default=1,
                      help="k-means clusters of the pairs, one model each (default 1: one model for all)")
    diff.add_argument("--cluster-features", choices=CLUSTER_FEATURES, default=CLUSTER_FEATURES[0],
                      help="features to cluster on: intensity statistics, mask layout and a thumbnail (no weights), "
                           "or Inception-v3 features (local weights)")
    diff.add_argument("--inception-weights", default=None,
                      help="Inception-v3 weight file for --cluster-features inception (default: "
                           "$SINGANSEG_INCEPTION_WEIGHTS, then the torch hub cache); nothing is downloaded")
    diff.add_argument("--resize", type=int, nargs="+", default=None, metavar="SIZE",
                      help="resize every pair to this spatial size first (pairs of one model must share a shape)")
    defaults = DiffusionConfig()
    diff.add_argument("--image-size", type=int, nargs="+", default=list(defaults.image_size),
                      help="training crop size, each side a multiple of 2^(UNet levels - 1) (default "
                           f"{' '.join(map(str, defaults.image_size))})")
    diff.add_argument("--unet-channels", type=int, nargs="+", default=list(defaults.unet_channels),
                      help="feature maps per UNet level (default "
                           f"{' '.join(map(str, defaults.unet_channels))}; attention at the deepest level)")
    diff.add_argument("--timesteps", type=int, default=defaults.num_train_timesteps,
                      help=f"diffusion steps T of the forward process (default {defaults.num_train_timesteps})")
    diff.add_argument("--no-flips", action="store_true", help="no random flips of the training crops")
    _add_learned_training_options(diff, defaults, "the weights, the weights that sample", "no progress bars")


def _add_learned_training_options(parser: argparse.ArgumentParser, defaults, averaged: str, quiet: str) -> None:
    """The options ``train-diffusion`` and ``train-stylegan`` share: optimisation and its moving average (defaults
    from the config ``defaults``; ``averaged``: what the average is of, in --ema-decay's help), device, label and
    intensity reading, progress (``quiet``: --quiet's help) and threads."""
    parser.add_argument("--train-steps", type=_positive_int, default=defaults.train_steps)
    parser.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--ema-decay", type=float, default=defaults.ema_decay,
                        help=f"moving average of {averaged} (0: off; default {defaults.ema_decay})")
    parser.add_argument("--checkpoint-every", type=_positive_int, default=defaults.checkpoint_every)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: GPU LOCAL_RANK if any, else cpu)")
    parser.add_argument("--num-classes", type=_class_count, default=None, help="the masks hold class indices 0..K-1")
    parser.add_argument("--percentiles", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="map these intensity percentiles to the range ends (default: min and max)")
    parser.add_argument("--window", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="fixed intensity window, e.g. -160 240 HU for CT")
    parser.add_argument("--quiet", action="store_true", help=quiet)
    _add_threads_option(parser)


def _add_stylegan_parser(sub) -> None:
    sg = sub.add_parser("train-stylegan", help="train a conditional StyleGAN2 of image + mask pairs on the pairs of a "
                                               "datalist (small datasets: DiffAugment, R1)")
    sg.add_argument("datalist", help="Decathlon-style datalist JSON; relative paths are relative to its folder")
    sg.add_argument("--out", required=True, help="checkpoint file")
    sg.add_argument("--section", default="training", help="datalist key to train on (default: training)")
    sg.add_argument("--resume", action="store_true", help="continue an interrupted training in --out")
    defaults = StyleGANConfig()
    sg.add_argument("--design", choices=DESIGNS, default=defaults.design,
                    help="joint: one generator of image and mask; mask_then_image: a mask generator, then an image "
                         "generator conditioned on the mask (it also draws images for given masks)")
    sg.add_argument("--resolution", type=int, nargs="+", default=list(defaults.resolution),
                    help="training size, one side or one per axis, each a multiple of 2^(levels - 1); pairs are "
                         f"resized to it (default {' '.join(map(str, defaults.resolution))})")
    sg.add_argument("--widths", type=int, nargs="+", default=list(defaults.widths),
                    help=f"feature maps per level, coarsest first (default {' '.join(map(str, defaults.widths))})")
    sg.add_argument("--latent-dim", type=_positive_int, default=defaults.latent_dim)
    sg.add_argument("--style-dim", type=_positive_int, default=defaults.style_dim)
    sg.add_argument("--mapping-layers", type=_positive_int, default=defaults.mapping_layers)
    sg.add_argument("--class-key", default=None,
                    help="datalist key of each pair's class (a contrast, a protocol): condition both networks on it")
    sg.add_argument("--r1-gamma", type=float, default=defaults.r1_gamma,
                    help=f"R1 penalty weight (default {defaults.r1_gamma:g})")
    sg.add_argument("--r1-interval", type=_positive_int, default=defaults.r1_interval)
    sg.add_argument("--augment", nargs="*", choices=AUGMENT_OPS, default=list(defaults.augment),
                    help="DiffAugment operations (none: give the option alone; default: "
                         f"{' '.join(defaults.augment)})")
    sg.add_argument("--no-flips", action="store_true", help="no random flips of the training pairs")
    _add_learned_training_options(sg, defaults, "the generator's weights, which sample", "no progress bar")


def _refuse_diffusion_options(args: argparse.Namespace, model) -> None:
    """Diffusion sampling options for a model that does not denoise (SinGAN-Seg): refused, not silently ignored."""
    defaults = DiffusionSampling()
    if (args.steps, args.sampler, args.dilation, args.jump_length, args.resample) != (
            defaults.steps, defaults.sampler, defaults.dilation, defaults.jump_length, defaults.resample):
        raise SinGANSegInputError(f"{args.model}: a {model.display_name} model; --steps, --sampler, --dilation, "
                                  "--jump-length and --resample are diffusion options.")


def _diffusion_sampling(args: argparse.Namespace) -> DiffusionSampling:
    """The diffusion sampling options of ``sample`` / ``report``, checked (one line for a bad one)."""
    try:
        style = {"style": args.style, "style_weights": args.style_weights} if hasattr(args, "style") else {}
        return DiffusionSampling(steps=args.steps, sampler=args.sampler, jump_length=args.jump_length,
                                 resample=args.resample, dilation=args.dilation, **style).validate()
    except ValueError as err:
        raise SinGANSegInputError(f"diffusion sampling: {err}") from err


def _add_diffusion_sampling_options(parser: argparse.ArgumentParser, inpaint_files: bool = True) -> None:
    defaults = DiffusionSampling()
    group = parser.add_argument_group("diffusion models")
    group.add_argument("--steps", type=_positive_int, default=defaults.steps,
                       help=f"denoising steps (default {defaults.steps})")
    group.add_argument("--sampler", choices=SAMPLERS, default=defaults.sampler,
                       help="ddim (default: good in few steps) or ddpm; inpainting always takes DDPM steps")
    if inpaint_files:
        group.add_argument("--inpaint-image", nargs="+", default=None,
                           help="a real image (file(s), stacked as channels) to redraw the --inpaint-label region "
                                "of, with RePaint, instead of drawing whole new pairs")
        group.add_argument("--inpaint-label", default=None, help="the mask whose region (dilated) is redrawn")
        group.add_argument("--inpaint-region", default=None,
                           help="a mask of the region to redraw instead of the dilated --inpaint-label")
    group.add_argument("--dilation", type=int, default=defaults.dilation,
                       help=f"pixels the inpainting mask is dilated by (default {defaults.dilation})")
    group.add_argument("--jump-length", type=_positive_int, default=defaults.jump_length,
                       help=f"RePaint jump length (default {defaults.jump_length})")
    group.add_argument("--resample", type=_positive_int, default=defaults.resample,
                       help=f"RePaint resamplings per jump (default {defaults.resample}; 1 = none)")


def _add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="quality report: samples per start scale, mask statistics, SIFID, SWD, "
                                           "diversity and memorisation as PNG, JSON and markdown")
    report.add_argument("model", help="checkpoint written by 'singanseg train' or 'singanseg train-diffusion'")
    report.add_argument("--image", nargs="+", required=True, help="the training image file(s), as given to train")
    report.add_argument("--label", required=True, help="the training mask")
    report.add_argument("--out", required=True, help="report folder")
    report.add_argument("--start-scales", type=int, nargs="+", default=None,
                        help="default: every trained scale (SinGAN-Seg; a diffusion model reports new and inpainted "
                             "pairs instead)")
    report.add_argument("--num", type=int, default=16, help="samples per start scale (default 16)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--inception-weights", default=None,
                        help="Inception-v3 weight file for SIFID (default: $SINGANSEG_INCEPTION_WEIGHTS, then the "
                             "torch hub cache; without one SIFID is left out)")
    report.add_argument("--device", default="cpu")
    report.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    report.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_diffusion_sampling_options(report, inpaint_files=False)
    _add_threads_option(report)


def _report(args: argparse.Namespace) -> None:
    from monai_singanseg.generators import load_generator
    from monai_singanseg.io import model_name, read_stacked_images
    from monai_singanseg.report import write_report

    if args.num < 2:  # the library's own check names its parameter, num_samples
        raise SinGANSegInputError(f"--num {args.num}: the report needs at least 2 samples per start scale (its "
                                  "diversity compares pairs).")
    model = load_generator(args.model, device=_device(args.device), require_complete=False)
    sampling = None  # options first: a wrong one is cheaper to say than a wrong file
    if model.denoises:
        sampling = _diffusion_sampling(args).check_model(model.config, str(args.model))
    else:
        _refuse_diffusion_options(args, model)
    image = read_stacked_images(args.image).as_tensor()
    label = _checked_report_label(args, model, image)
    report = write_report(model, image, label, args.out, args.start_scales, args.num, args.seed,
                          inception_weights=args.inception_weights, overwrite=args.overwrite,
                          progress=not args.quiet, name=model_name(args.model), sampling=sampling)
    sifid = "" if report["sifid_available"] else f"; SIFID left out: {report['sifid_note']}"
    print(f"wrote {len(report['files'])} files to {args.out}{sifid}")


def _warn_other_image(path, image, model_path, model) -> None:
    """Warn when ``image`` ``(C, *spatial)``, given as the model's training image (``report``, and the target of
    ``harmonize``), cannot be it: another size than the model was trained on, or values that hardly meet the
    model's intensity range (they would clip to its ends). Only a warning: another image is rarely meant, but may be.

    The range test is loose on purpose: a window (CT in HU) legitimately leaves much of the image outside the
    model's range, so only an image that overlaps less than a tenth of it (another modality or scaling) is named.
    """
    warn = logging.getLogger(__name__).warning
    trained = model.source.get("shape")
    if trained and list(image.shape[1:]) != list(trained):
        warn("%s: size %s, the model %s was trained on an image of size %s; is this its training image?", path,
             tuple(image.shape[1:]), model_path, tuple(trained))
    for c, (low, high) in enumerate(zip(model.intensity.lower, model.intensity.upper)):
        if c >= image.shape[0]:
            break
        least, most = float(image[c].min()), float(image[c].max())
        if min(most, high) - max(least, low) < 0.1 * (high - low):
            warn("%s: values %g..%g in channel %d, the model %s was trained on the range %g..%g; is this its "
                 "training image?", path, least, most, c, model_path, low, high)


def _checked_report_label(args: argparse.Namespace, model, image):
    """The report compares samples with the training pair: an image or label that cannot be it is refused by name,
    one of another size than the training image is reported (quality against another image is rarely meant)."""
    from monai_singanseg.io import read_mask

    cfg = model.config
    # write_report's real_pair refuses it too, by shape only: here the file and the model are named
    if image.shape[0] != cfg.image_channels or image.ndim - 1 != cfg.spatial_dims:
        raise SinGANSegInputError(
            f"{args.image[0]}: a {image.ndim - 1}D image with {image.shape[0]} channel(s); the model {args.model} "
            f"makes {cfg.spatial_dims}D images with {cfg.image_channels} channel(s)."
        )
    _warn_other_image(args.image[0], image, args.model, model)
    label = read_mask(args.label, image.shape[1:], f"the image {args.image[0]}", binary=not model.labels.one_hot)
    if label.shape[0] == 1:  # class indices or a binary mask: its values must be the training label's
        unknown = sorted(set(label.unique().tolist()) - set(model.labels.values))
        if unknown:
            raise SinGANSegInputError(
                f"{args.label}: values {unknown[:6]} are not among the training label's {model.labels.values}."
            )
    return label


def _harmonize(args: argparse.Namespace) -> None:
    import torch

    from monai_singanseg.checkpoint import load_model
    from monai_singanseg.harmonization import harmonize
    from monai_singanseg.io import read_image, read_mask, write_image

    # an unfinished model is refused as 'sample' refuses it (the same check)
    model, _ = load_model(args.model, device=_device(args.device), require_complete=True)
    target = read_image(args.image)
    fmt = "png" if str(args.image).lower().endswith(".png") else "nii.gz"
    out = Path(args.out)
    done = "edited" if args.mode == "edit" else "harmonized"  # the files say which command made them
    names = {k: out / f"{k.replace('result', done)}.{fmt}" for k in ("result_image", "result_label",
                                                                      "composite_image")}
    existing = [str(p) for p in names.values() if p.exists()]
    if existing and not args.overwrite:
        raise SinGANSegInputError(f"{existing[0]}: already exists; pass --overwrite or choose another --out.")
    donor = read_image(args.donor_image)
    # harmonize() checks these too, but calls the files "target" and "donor"; here they are named, and refused
    # before the masks are read against their sizes and the target is compared with the model's training image
    for path, value in ((args.image, target), (args.donor_image, donor)):
        if not bool(torch.isfinite(value.as_tensor()).all()):
            raise SinGANSegInputError(f"{path}: holds NaN or infinite values.")
        if value.ndim - 1 != model.config.spatial_dims:
            raise SinGANSegInputError(f"{path}: a {value.ndim - 1}D image; the model {args.model} is "
                                      f"{model.config.spatial_dims}D.")
    _warn_other_image(args.image, target.as_tensor(), args.model, model)
    donor_mask = read_mask(args.donor_label, donor.shape[1:], f"the donor image {args.donor_image}")
    region = read_mask(args.region, target.shape[1:], f"the image {args.image}") if args.region else None
    image, label, composite = harmonize(model, target.as_tensor(), donor.as_tensor(), donor_mask,
                                        args.at_scale, args.location, region, args.seed, args.mode)
    meta = dict(target.meta)
    write_image(image, names["result_image"], meta)
    write_image(label, names["result_label"], meta, is_label=True)
    write_image(composite, names["composite_image"], meta)
    print(f"wrote {names['result_image']}, {names['result_label']} and {names['composite_image']}")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-size", type=int, default=PyramidConfig.max_size)
    parser.add_argument("--min-size", type=int, default=PyramidConfig.min_size)
    parser.add_argument("--scale-factor", type=float, default=PyramidConfig.scale_factor)
    parser.add_argument("--schedule", choices=tuple(SCHEDULES), default="fast",
                        help="fast (default: 6-17x less training time, docs/benchmarks.md) or faithful (the "
                             "SinGAN-Seg reference recipe: 2000 iterations per scale, 3 critic + 3 generator steps; "
                             "somewhat closer to the training image on textures)")
    parser.add_argument("--iters", type=int, default=None,
                        help="iterations per scale (default: the schedule's, 600 fast / 2000 faithful; the fast "
                             "schedule's four coarsest scales run 10/3 as many, and its other scales may stop "
                             "earlier on a plateau)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu; GPU per rank in train-many)")
    parser.add_argument("--num-classes", type=_class_count, default=None, help="the mask holds class indices 0..K-1")
    parser.add_argument("--norm", choices=NORMS, default=NetworkConfig.norm)
    parser.add_argument("--act", choices=ACTS, default=NetworkConfig.act)
    parser.add_argument("--base-channels", type=int, default=NetworkConfig.base_channels)
    parser.add_argument("--crop-size", type=int, default=None,
                        help="train the scales larger than this on random windows of this many pixels (default: the "
                             "schedule's; 0 = whole images): a model at the image's own size for about the cost of "
                             "one this size (docs/quality.md)")
    parser.add_argument("--rec-weight", type=float, default=None,
                        help="reconstruction weight of the fine scales (default: the schedule's, 10; the fast "
                             "schedule's four coarsest scales keep it): 100 keeps more of the image's fine detail "
                             "(docs/quality.md, 'Blur')")
    parser.add_argument("--padding", choices=PADDINGS, default=None,
                        help="how the generators pad their input (default: the schedule's; zeros is the reference "
                             "and leaves a dark frame and pinned corners in the samples: docs/quality.md)")
    parser.add_argument("--critic", choices=CRITICS, default=None,
                        help="patch (default: the reference's Markovian critic) or content_layout (adds One-Shot "
                             "GAN's content and layout branches at the coarsest scales; not measured downstream: "
                             "docs/quality.md, 'Layouts')")
    parser.add_argument("--critic-scales", type=int, default=None,
                        help=f"how many coarsest scales get the content and layout branches and the "
                             f"--critic-augment operations (default {NetworkConfig.critic_scales})")
    parser.add_argument("--critic-augment", nargs="+", choices=AUGMENT_OPS, default=None, metavar="OP",
                        help=f"DiffAugment operations ({', '.join(AUGMENT_OPS)}) through which the critics of the "
                             "--critic-scales coarsest scales, of either --critic, see real and generated inputs "
                             "alike (default: none; not measured downstream: docs/quality.md, 'Layouts')")
    parser.add_argument("--percentiles", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="map these intensity percentiles to the range ends (default: min and max)")
    parser.add_argument("--window", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="fixed intensity window, e.g. -160 240 HU for CT; outputs come back in these units")
    parser.add_argument("--slice-axis", type=int, default=None, help="train on one 2D slice of a volume")
    parser.add_argument("--slice-index", type=_slice_index_value, default="largest",
                        help="slice number, or 'largest' mask area (default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--low-memory", action="store_true",
                        help="hand freed feature maps back to the system at once (glibc): peak memory 1.4 instead "
                             "of 1.6 GiB at max size 250 on a CPU, but iterations about 40 %% slower "
                             "(docs/benchmarks.md)")


def _low_memory() -> None:
    """Have glibc serve blocks of 16 MiB and more (the large feature maps) by mmap, so a freed map goes back to the
    system at once instead of staying in the heap for reuse. Only the command line does this: it owns its process,
    the library leaves the allocator alone."""
    import ctypes
    import ctypes.util

    m_mmap_threshold = -3  # <malloc.h>
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(m_mmap_threshold, 16 << 20) == 1
    except (OSError, AttributeError):
        done = False
    if not done:
        logger.warning("--low-memory: this C library has no glibc mallopt; memory use is unchanged.")


def _config(args: argparse.Namespace, pair) -> SinGANSegConfig:
    """The config for ``pair`` from the command-line options."""
    try:
        config = SinGANSegConfig.for_schedule(args.schedule, iters_per_scale=args.iters,
                                              spatial_dims=pair.spatial_dims, image_channels=pair.image_channels,
                                              mask_channels=pair.labels.channels, seed=args.seed)
        config.pyramid = PyramidConfig(min_size=args.min_size, max_size=args.max_size, scale_factor=args.scale_factor)
        config.network = NetworkConfig(norm=args.norm, act=args.act, base_channels=args.base_channels,
                                       padding=args.padding or config.network.padding,
                                       critic=args.critic or config.network.critic)
        if args.critic_scales is not None:
            config.network.critic_scales = args.critic_scales
        if args.critic_augment is not None:
            config.network.critic_augment = tuple(args.critic_augment)
        if args.crop_size is not None:
            config.optim.crop_size = args.crop_size
        if args.rec_weight is not None:
            config.optim = config.optim.with_fine_rec_weight(args.rec_weight)
        config.validate()
    except ValueError as err:
        raise SinGANSegInputError(f"invalid option: {err}") from err
    _warn_single_scale(pair, config.pyramid)
    return config


def _warn_single_scale(pair, pyramid: PyramidConfig) -> None:
    """Warn when the pyramid has one scale: a long thin image (48x384 at --max-size 96 is 12x96) shrinks below
    --min-size on its short side, and the model then learns texture only, no layout, without a word."""
    from monai_singanseg.pyramid import scale_shapes

    shape = tuple(int(s) for s in pair.real.shape[1:])
    finest = scale_shapes(shape, pyramid)
    if len(finest) > 1:
        return
    name = pair.meta.get("filename_or_obj") or "the training image"

    def scales_at(max_size: int) -> int:
        return len(scale_shapes(shape, PyramidConfig(min_size=pyramid.min_size, max_size=max_size,
                                                     scale_factor=pyramid.scale_factor)))

    # the smallest --max-size that gives a second scale, if the image is large enough for one at all
    need = next((m for m in range(pyramid.max_size + 1, max(shape) + 1) if scales_at(m) > 1), None)
    advice = f"raise --max-size to {need} or more, or lower --min-size" if need else "lower --min-size"
    logger.warning("%s: %s at --max-size %d is %s, its short side not above --min-size %d: the pyramid has 1 scale, "
                   "so the model learns texture but no layout; %s.", name, "x".join(map(str, shape)),
                   pyramid.max_size, "x".join(map(str, finest[0])), pyramid.min_size, advice)


def _train_many(args: argparse.Namespace) -> None:
    import torch

    from monai_singanseg.io import check_percentiles
    from monai_singanseg.training.many import train_many
    from monai_singanseg.training.runner import check_summary, cpu_threads_per_rank

    check_percentiles(args.percentiles)  # the library checks them per item, where a bad pair fails every model
    # train_many's check_output_folder says the same without --out, and only after reading the datalist
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SinGANSegInputError(f"{args.out}: exists and is not a folder; --out takes the folder of checkpoints.")
    device = None if args.device is None else _device(args.device)
    threads = torch.get_num_threads()
    if torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type == "cpu":
        # torchrun's ranks on one machine share its cores: one share each instead of all of them each; never more
        # than the user's own limit (OMP_NUM_THREADS): more OpenMP threads than free cores spin and crawl (20x here)
        torch.set_num_threads(min(threads, cpu_threads_per_rank()))
    try:
        summary = train_many(args.datalist, args.out, lambda pair: _config(args, pair), section=args.section,
                             device=device, num_classes=args.num_classes, percentiles=args.percentiles,
                             progress=not args.quiet, group_size=args.group_size, window=args.window,
                             slice_axis=args.slice_axis, slice_index=args.slice_index)
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)
    check_summary(summary, args.out)


def _train(args: argparse.Namespace) -> None:
    from monai_singanseg.files import claim_output
    from monai_singanseg.io import load_training_pair
    from monai_singanseg.training import check_trainable

    out = _check_output_file(args.out)
    device = _device(args.device)
    if out.exists() and not args.resume:  # checked again once claimed; here it saves reading the inputs
        raise SinGANSegInputError(f"{out}: already exists; pass --resume to continue it, or choose another --out.")
    # the inputs first: a bad one leaves nothing behind, not even the folders of --out
    pair = load_training_pair(args.image, args.label, num_classes=args.num_classes, percentiles=args.percentiles,
                              window=args.window, slice_axis=args.slice_axis, slice_index=args.slice_index)
    config = _config(args, pair)
    check_trainable(pair.real.shape[1:], config, str(args.image[0]))
    # a second run on this --out stops at the claim, not after training over the first one's model
    with _output_folder(out), claim_output(out):
        _train_claimed(args, out, device, pair, config)


def _train_claimed(args: argparse.Namespace, out: Path, device: str, pair, config: SinGANSegConfig) -> None:
    """``train`` of the checked ``pair`` once ``out`` is claimed for this run."""
    from monai_singanseg.checkpoint import read_checkpoint, training_state
    from monai_singanseg.training import SinGANSegTrainer, config_differences, verify_checkpoint_data

    resume = args.resume and out.exists()
    if out.exists() and not args.resume:
        raise SinGANSegInputError(f"{out}: already exists; pass --resume to continue it, or choose another --out.")
    if resume:
        stored = verify_checkpoint_data(out, pair.real)
        for change in config_differences(stored, config):
            print(f"{out}: resuming with the checkpoint's options: {change}", file=sys.stderr)
        state = training_state(read_checkpoint(out))
        if state is not None and state.complete:
            print(f"{out}: training already complete; nothing to do.")
            return
    trainer = SinGANSegTrainer(config, device=device, progress=not args.quiet, log_dir=args.tensorboard)
    model = trainer.fit(pair.real, pair.intensity, pair.labels, out, resume=resume, source=pair.source,
                        name=str(args.label))
    print(f"wrote {out}: {model.num_scales} scales {model.shapes[0]} -> {model.shapes[-1]}, "
          f"{pair.image_channels} image + {pair.labels.channels} mask channels")


def _train_diffusion(args: argparse.Namespace) -> None:
    from monai_singanseg.diffusion.many import load_datalist_pairs, resize_pair, train_diffusion_models
    from monai_singanseg.io import check_percentiles, load_training_pair, model_name
    from monai_singanseg.training.runner import check_summary

    check_percentiles(args.percentiles)
    device = None if args.device is None else _device(args.device)
    reader = {"num_classes": args.num_classes, "percentiles": args.percentiles, "window": args.window}
    if args.image is not None:
        if args.label is None:
            raise SinGANSegInputError("--image needs --label (the pair's mask).")
        pair = load_training_pair(args.image, args.label, **reader)
        names, pairs = [model_name(args.image[0])], [resize_pair(pair, args.resize) if args.resize else pair]
    else:
        names, pairs = load_datalist_pairs(args.datalist, args.section, args.resize, **reader)
    out = _check_output_file(args.out) if args.clusters == 1 else Path(args.out)
    if args.clusters > 1 and out.exists() and not out.is_dir():
        raise SinGANSegInputError(f"{out}: exists and is not a folder; with --clusters the output is a folder.")
    # the trainer refuses mixed shapes per model ("pair 1: ..."), after clustering; here before, with the cure
    shapes = sorted({tuple(p.real.shape[1:]) for p in pairs})
    if len(shapes) > 1:
        raise SinGANSegInputError(f"{args.datalist}: pairs of {len(shapes)} spatial shapes ({shapes[0]}, "
                                  f"{shapes[1]}, ...); pass --resize to bring them to one.")

    def make_config(pair) -> DiffusionConfig:
        try:
            return DiffusionConfig.for_pair(
                pair, image_size=args.image_size[0] if len(args.image_size) == 1 else args.image_size,
                unet_channels=args.unet_channels, num_train_timesteps=args.timesteps, lr=args.lr,
                ema_decay=args.ema_decay, train_steps=args.train_steps, batch_size=args.batch_size,
                checkpoint_every=args.checkpoint_every,
                flips=not args.no_flips, seed=args.seed)
        except ValueError as err:
            raise SinGANSegInputError(f"invalid option: {err}") from err

    options = {"method": args.cluster_features, "inception_weights": args.inception_weights, "seed": args.seed}
    try:
        with _output_folder(out) if args.clusters == 1 else contextlib.nullcontext():
            summary = train_diffusion_models(names, pairs, out, make_config, args.clusters, options, device=device,
                                             resume=args.resume, progress=not args.quiet)
            rank = int(os.environ.get("RANK", "0"))  # every rank has every rank's records: each names its own
            for record in summary["models"]:
                if record["rank"] == rank and record["status"] != "failed":
                    print(f"wrote {record['checkpoint']}: {record['pairs']} pair(s), {record['steps']} steps",
                          flush=True)
            check_summary(summary)  # inside: a failed single model leaves no folders behind
    except ImportError as err:  # scikit-learn for --clusters, einops for the UNet's attention
        raise SinGANSegInputError(f"a package is missing: {err}") from err


def _train_stylegan(args: argparse.Namespace) -> None:
    from monai_singanseg.diffusion.many import load_datalist_pairs
    from monai_singanseg.io import check_percentiles
    from monai_singanseg.stylegan.many import datalist_classes, train_stylegan_models
    from monai_singanseg.training.runner import check_summary

    check_percentiles(args.percentiles)
    device = None if args.device is None else _device(args.device)
    out = _check_output_file(args.out)
    reader = {"num_classes": args.num_classes, "percentiles": args.percentiles, "window": args.window}
    resolution = args.resolution[0] if len(args.resolution) == 1 else args.resolution
    _, pairs = load_datalist_pairs(args.datalist, args.section, **reader)
    classes, class_names = (None, []) if args.class_key is None else datalist_classes(
        args.datalist, args.section, args.class_key)
    try:
        config = StyleGANConfig.for_pair(
            pairs[0], resolution=resolution, widths=args.widths, latent_dim=args.latent_dim,
            style_dim=args.style_dim, mapping_layers=args.mapping_layers, design=args.design,
            num_classes=len(class_names), r1_gamma=args.r1_gamma, r1_interval=args.r1_interval,
            augment=tuple(args.augment), flips=not args.no_flips, lr=args.lr, batch_size=args.batch_size,
            train_steps=args.train_steps, ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every,
            seed=args.seed)
    except ValueError as err:
        raise SinGANSegInputError(f"invalid option: {err}") from err
    with _output_folder(out):
        summary = train_stylegan_models(pairs, out, config, classes, class_names or None, device=device,
                                        resume=args.resume, progress=not args.quiet)
        check_summary(summary)
    classes_text = f", classes {', '.join(class_names)}" if class_names else ""
    print(f"wrote {out}: {len(pairs)} pair(s), {config.design}, {summary['models'][0]['steps']} steps{classes_text}")


def _sample_stylegan(args: argparse.Namespace, model) -> None:
    from monai_singanseg.stylegan.writing import class_index, read_condition_masks, write_stylegan_samples

    # options of the other kinds are refused, not silently ignored
    others = {"--start-scale": args.start_scale != 0, "--diversity": args.diversity != 1.0,
              "--scale-ratio": args.scale_ratio is not None, "--style": args.style != "none",
              "--inpaint-*": any(v is not None for v in (args.inpaint_image, args.inpaint_label, args.inpaint_region)),
              "--steps/--sampler": (args.steps, args.sampler) != (DiffusionSampling().steps, DiffusionSampling().sampler)}
    given = [name for name, used in others.items() if used]
    if given:
        raise SinGANSegInputError(f"{args.model}: a StyleGAN model; {', '.join(given)}: options of the other kinds "
                                  "(StyleGAN takes --masks, --truncation and --class-name).")
    masks = None if args.masks is None else read_condition_masks(model, args.masks)
    classes = None if args.class_name is None else class_index(model, args.class_name)
    items = write_stylegan_samples(model, args.out, args.num, seed=args.seed, masks=masks, truncation=args.truncation,
                                   classes=classes,
                                   fmt=args.format, overwrite=args.overwrite, batch_size=args.batch_size,
                                   name=str(args.model))
    print(f"wrote {len(items)} pairs and {Path(args.out) / 'preview.png'}")


def _sample_diffusion(args: argparse.Namespace, model) -> None:
    from monai_singanseg.generation import write_diffusion_samples
    from monai_singanseg.io import read_mask, read_stacked_images

    if args.start_scale != 0 or args.diversity != 1.0 or args.scale_ratio is not None:
        raise SinGANSegInputError(f"{args.model}: a diffusion model; --start-scale, --diversity and --scale-ratio "
                                  "are SinGAN-Seg options.")
    from monai_singanseg.style import parse_content_style

    if args.style_image is not None or args.style_steps != STYLE_STEPS or parse_content_style(
            args.content_style) != STYLE_CONTENT_STYLE:
        raise SinGANSegInputError(f"{args.model}: a diffusion model; its styling pass after inpainting takes "
                                  "--style and --style-weights only (the style is the real context).")
    if (args.inpaint_image is None) != (args.inpaint_label is None):
        raise SinGANSegInputError("--inpaint-image and --inpaint-label go together.")
    if args.style != "none" and args.inpaint_image is None:  # the library's "give a context", in options
        raise SinGANSegInputError(f"{args.model}: --style with a diffusion model is a pass after inpainting; give "
                                  "--inpaint-image and --inpaint-label.")
    sampling = _diffusion_sampling(args).check_model(model.config, str(args.model))
    context = region = None
    if args.inpaint_region is not None and args.inpaint_image is None:
        raise SinGANSegInputError("--inpaint-region needs --inpaint-image and --inpaint-label.")
    if args.inpaint_image is not None:
        image = read_stacked_images(args.inpaint_image)
        like = (image.shape[1:], f"the image {args.inpaint_image[0]}")
        # class-index labels of a multi-class model are not binary; the region to redraw always is
        label = read_mask(args.inpaint_label, *like, binary=not model.labels.one_hot,
                          nonempty=args.inpaint_region is None)  # with a region, the label may hold no lesion yet
        context = (image, label)
        if args.inpaint_region is not None:
            region = read_mask(args.inpaint_region, *like)
    items = write_diffusion_samples(model, args.out, args.num, sampling, context, region, seed=args.seed,
                                    fmt=args.format, overwrite=args.overwrite, batch_size=args.batch_size,
                                    name=str(args.model))
    print(f"wrote {len(items)} pairs and {Path(args.out) / 'preview.png'}")


def _sample(args: argparse.Namespace) -> None:
    from monai_singanseg.generation import write_samples
    from monai_singanseg.generators import load_generator

    model = load_generator(args.model, device=_device(args.device), require_complete=True)
    if model.kind == "stylegan":  # its own options (--masks, --truncation, --class-name) and writer
        return _sample_stylegan(args, model)
    if args.masks is not None or args.truncation != 1.0 or args.class_name is not None:
        raise SinGANSegInputError(f"{args.model}: --masks, --truncation and --class-name are StyleGAN options.")
    if model.denoises:
        return _sample_diffusion(args, model)
    if any(v is not None for v in (args.inpaint_image, args.inpaint_label, args.inpaint_region)):
        harmonize = " (SinGAN-Seg inserts lesions with 'singanseg harmonize')" if model.supports_injection else ""
        raise SinGANSegInputError(f"{args.model}: a {model.display_name} model; inpainting (--inpaint-*) needs a "
                                  f"diffusion model{harmonize}.")
    _refuse_diffusion_options(args, model)
    if args.style == "none":
        from monai_singanseg.style import parse_content_style

        if args.style_image is not None or args.style_steps != STYLE_STEPS or parse_content_style(
                args.content_style) != STYLE_CONTENT_STYLE:
            raise SinGANSegInputError("--style-image, --style-steps and --content-style refine samples: give "
                                      "--style histogram or --style vgg with them.")
    ratio = None
    if args.scale_ratio is not None:
        ratio = args.scale_ratio[0] if len(args.scale_ratio) == 1 else args.scale_ratio
    reference, options = None, {}
    if args.style != "none":
        from monai_singanseg.style import parse_content_style, style_reference

        if args.style_steps < 1:  # the VGG pass refuses it only once sampling is under way, as a ValueError
            raise SinGANSegInputError(f"--style-steps must be >= 1, got {args.style_steps}.")
        reference = style_reference(model, args.style_image)
        options = {"weights": args.style_weights, "content_style": parse_content_style(args.content_style),
                   "steps": args.style_steps, "progress": args.style == "vgg" and not args.quiet}
    items = write_samples(model, args.out, args.num, args.start_scale, ratio, args.seed, args.format,
                          args.overwrite, batch_size=args.batch_size, name=str(args.model), style=args.style,
                          style_reference=reference, style_options=options, diversity=args.diversity)
    print(f"wrote {len(items)} pairs and {Path(args.out) / 'preview.png'}")


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's kill, torchrun stopping its workers) unwinds like Ctrl-C, so what is half-written is
    cleaned up and the last checkpoint stays valid. Only the command line does this: the library leaves signals
    alone."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _interrupt_on_sigterm()
    logging.basicConfig(level=logging.INFO if getattr(args, "quiet", False) is False else logging.WARNING,
                        format="%(message)s")
    logging.getLogger("ignite").setLevel(logging.WARNING)  # ignite's per-run INFO lines duplicate the progress bar
    # the runner's one line per model and its counts (train-many, train-diffusion) are what --quiet keeps (it drops
    # bars and per-scale lines)
    logging.getLogger("monai_singanseg.training.runner").setLevel(logging.INFO)
    try:
        commands = {"train": _train, "train-many": _train_many, "train-diffusion": _train_diffusion,
                    "train-stylegan": _train_stylegan, "sample": _sample,
                    "harmonize": _harmonize, "edit": _harmonize, "report": _report}
        _check_seed(getattr(args, "seed", None))
        if getattr(args, "low_memory", False):
            _low_memory()
        with _torch_threads(args.threads):
            commands[args.command](args)
    except SinGANSegInputError as err:
        print(f"singanseg: error: {err}", file=sys.stderr)
        return 2
    except SamplesInterrupted as err:  # sample (either kind of model): the pairs written so far stay
        preview = f" and {err.preview}" if err.preview else ""
        print(f"singanseg: interrupted: wrote {err.written} of {err.total} pairs{preview} to {args.out}; a rerun "
              "into it needs --overwrite (it replaces them)", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        # checkpoints and outputs are written atomically, so what was finished is intact
        out = Path(getattr(args, "out", "") or "")
        saved = args.command != "train" or out.is_file()  # a run stopped before its first scale saved nothing
        resumable = {"train": " (finished scales are saved: continue with --resume)" if saved else
                     " before its first scale was saved; nothing was written",
                     "train-diffusion": " (the last checkpoint is saved: continue with --resume)",
                     "train-stylegan": " (the last checkpoint is saved: continue with --resume)"}.get(args.command, "")
        print(f"singanseg: interrupted{resumable}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
