"""``python -m translearn.export RUN_DIR --format onnx|torchscript [--out PATH]``: the model, for serving.

    python -m translearn.export RUN_DIR --format onnx          # RUN_DIR/export/model.onnx (+ model.onnx.json)
    python -m translearn.export RUN_DIR --format torchscript   # RUN_DIR/export/model.pt   (+ model.pt.json)

What is exported is the plain network (``module.net`` in eval mode, float32): input ``batch × in_chans ×
crop × crop`` (any batch size), output the logits, one per class. The JSON sidecar beside it says how to
make that input from an image (the run's resize, crop, colour mode and normalisation, in order) and what
the outputs mean (``class_names``), so the file is usable without translearn. After writing, the export
is run on a few images (the run's val split where it can be read, else random tensors) at a batch size
other than the one traced, and its outputs must equal PyTorch's within ``ATOL``.

Pitfalls:

* ONNX: torch >= 2.9 defaults to the torch.export-based ("dynamo") exporter, which needs the
  ``onnxscript`` package and re-traces the model through torch.export (slow on a CPU, and it fails
  offline-installed setups that lack onnxscript). The TorchScript-based exporter (``dynamo=False``) needs
  nothing beyond torch and handles every torchvision classifier, so it is used; its deprecation warning is
  silenced here. A model it cannot trace is a one-line error that suggests ``--format torchscript``.
* TorchScript: ``torch.jit.trace`` (deprecated in favour of torch.export, not for Python 3.14+) records one
  run of the network; translearn's networks have no data-dependent control flow, so the trace is exact,
  and the check at another batch size proves the batch dimension stayed free.
* Checking an ONNX file needs ``onnxruntime``, which translearn does not depend on: without it the check
  is skipped, and said so (``pip install 'translearn[onnx]'``, i.e. onnx and onnxruntime).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from translearn.errors import OneLineParser, UserError, exit_with
from translearn.log import log
from translearn.storage import write_json
from translearn.trained import Trained, load_trained

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ATOL = 1e-4  # float32 kernels of another runtime differ in summation order, by ~1e-6 on logits
CHECK_IMAGES = 8  # a batch size other than the traced one (1)
ONNX_OPSET = 17


def default_out(trained: Trained, fmt: str) -> Path:
    """``RUN_DIR/export/model.<ext>``; beside a checkpoint that is not in a run folder, named after it."""
    if trained.run_dir is not None:
        return trained.run_dir / "export" / f"model{FORMATS[fmt]}"
    return trained.checkpoint.with_suffix(FORMATS[fmt])


def sidecar_path(model: Path) -> Path:
    """``model.onnx`` → ``model.onnx.json``: two formats exported side by side keep one sidecar each."""
    return model.with_name(model.name + ".json")


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_torchscript(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\..*deprecated.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(net, example)
        partial = _partial(path)
        try:
            torch.jit.save(traced, str(partial))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def write_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path, arch: str) -> None:
    partial = _partial(path)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter's notice
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\..*deprecated.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                net, (example,), str(partial), dynamo=False, input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=ONNX_OPSET,
                do_constant_folding=True,
            )  # fmt: skip
        os.replace(partial, path)
    except Exception as exc:  # an operator or construct the exporter cannot trace: say so, in one line
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(
            f"{arch} cannot be exported to ONNX ({text}); use --format torchscript instead"
        ) from None
    finally:
        partial.unlink(missing_ok=True)


def check_inputs(trained: Trained, count: int = CHECK_IMAGES) -> tuple[torch.Tensor, str]:
    """A few images of the run's val split, through its eval transform; random tensors where it is unreadable.

    Real images exercise the value range the model will see; random ones still check the graph.
    """
    h = trained.hparams
    crop = int(h["preprocessing"]["crop"])
    if trained.run_dir is not None:
        from translearn.eval import build_data

        try:
            data, _ = build_data(trained.run_dir, [], trained)
            data.setup("validate")
            val = data.datasets["val"]
            n = min(count, len(val))
            if n >= 2:
                return torch.stack([val[i][0] for i in range(n)]), f"{n} images of the run's val split"
        except (UserError, OSError) as exc:
            log.info(f"the run's val images are not readable here ({exc}); checking on random tensors")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(count, int(h.get("in_chans", 3)), crop, crop, generator=generator)
    return x, f"{count} random tensors"


def run_export(path: Path, fmt: str, x: torch.Tensor) -> torch.Tensor | None:
    """The exported file's outputs on ``x``; None where no runtime for it is installed."""
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\..*deprecated.*")
            return torch.jit.load(str(path), map_location="cpu")(x)
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def sidecar(trained: Trained, fmt: str, path: Path, check: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to feed the exported model from an image file and to read its outputs."""
    import translearn
    from translearn.data.files import preprocessing_of
    from translearn.data.transforms import normalization

    h = trained.hparams
    prep = preprocessing_of(h)
    color, gray_mode = str(h.get("color", "rgb")), str(h.get("gray_mode", "replicate"))
    chans = int(h.get("in_chans", 3))
    mean, std = normalization(color, gray_mode, prep.mean, prep.std)
    steps = [
        "decode the image and turn it upright by its EXIF orientation tag (PIL.ImageOps.exif_transpose)",
        "convert it to RGB, 8 bits per channel: 16-bit values scaled by 255/65535 (not clipped), float "
        "values in 0..1 by 255; palette transparency and alpha dropped",
        f"resize so the shorter side is {prep.resize} px ({prep.interpolation}, antialiased)",
        f"center-crop {prep.crop}×{prep.crop}",
    ]
    if color == "gray":
        steps.append(
            "convert to gray (luma 0.299 R + 0.587 G + 0.114 B)"
            + (", repeated on 3 channels" if chans == 3 else ", 1 channel")
        )
    steps += [
        "scale to [0, 1] (divide by 255), channels first (C×H×W), float32",
        f"normalise each channel: (x - mean) / std with mean {list(mean)} and std {list(std)}",
        "stack into a batch: N×C×H×W",
    ]
    return {
        "format": fmt, "file": path.name, "translearn_version": translearn.__version__,
        "torch_version": torch.__version__, **({"onnx_opset": ONNX_OPSET} if fmt == "onnx" else {}),
        "checkpoint": str(trained.checkpoint), "run_dir": str(trained.run_dir) if trained.run_dir else None,
        "backbone": h.get("backbone"), "library": h.get("library", "torchvision"),
        "num_classes": int(h["num_classes"]), "class_names": trained.class_names,
        "input": {"name": "input", "shape": ["batch", chans, prep.crop, prep.crop], "dtype": "float32",
                  "layout": "NCHW"},
        "output": {"name": "logits", "shape": ["batch", int(h["num_classes"])],
                   "meaning": "logits in class_names order; softmax over axis 1 gives probabilities"},
        "color": color, "gray_mode": gray_mode, "in_chans": chans,
        # The mean/std the images get (gray adapt: one luma value), in both places a reader may look.
        "preprocessing": {**prep.as_dict(), "mean": list(mean), "std": list(std)},
        "normalize": {"mean": list(mean), "std": list(std)},
        "steps": steps, "check": check,
    }  # fmt: skip


def _is_export(path: Path) -> bool:
    """An earlier export (its sidecar names it): a new export may replace it; anything else is the user's."""
    try:
        meta = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("file") == path.name and "class_names" in meta


def export(
    target: str | Path, fmt: str, out: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Write the model and its sidecar, check the model against PyTorch; returns the sidecar."""
    trained = load_trained(target)
    net = trained.module.net.float().eval()
    h = trained.hparams
    crop = int(h["preprocessing"]["crop"])
    path = Path(out).expanduser() if out else default_out(trained, fmt)
    if path.is_dir():
        raise UserError(
            f"--out {path} is a folder; pass the file to write (e.g. {path / ('model' + FORMATS[fmt])})"
        )
    if path.exists() and not force and not _is_export(path):
        raise UserError(
            f"{path} exists and is not a model translearn exported (no {sidecar_path(path).name} beside it); "
            "choose another --out, or pass --force to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, int(h.get("in_chans", 3)), crop, crop)
    if fmt == "torchscript":
        write_torchscript(net, example, path)
    else:
        write_onnx(net, example, path, str(h["backbone"]))
    x, what = check_inputs(trained)
    with torch.no_grad():
        expected = net(x)
    got = run_export(path, fmt, x)
    if got is None:
        check: dict[str, Any] = {"skipped": "onnxruntime is not installed (pip install 'translearn[onnx]')"}
    else:
        diff = float((got.float() - expected).abs().max())
        check = {
            "reference": "pytorch",
            "inputs": what,
            "max_abs_diff": diff,
            "atol": ATOL,
            "passed": diff <= ATOL,
        }
    meta = sidecar(trained, fmt, path, check)
    write_json(sidecar_path(path), meta)
    log.info(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {sidecar_path(path).name}")
    if got is None:
        log.warning(
            "the ONNX outputs were not checked against PyTorch's: onnxruntime is not installed "
            "(pip install 'translearn[onnx]', i.e. onnx and onnxruntime, then export again)"
        )
    elif not check["passed"]:
        raise UserError(
            f"the exported model's outputs differ from PyTorch's by {check['max_abs_diff']:.2e} (> {ATOL}) "
            f"on {what}; {path} is kept for inspection, do not serve it"
        )
    else:
        log.info(
            f"check: outputs equal PyTorch's on {what} (max abs diff {check['max_abs_diff']:.1e} <= {ATOL})"
        )
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(
        usage_hint="python -m translearn.export RUN_DIR --format onnx|torchscript [--out PATH]",
        prog="python -m translearn.export",
        description="Export a trained run's network (input N×C×crop×crop float32, output logits) to ONNX or "
        "TorchScript, with a JSON sidecar (<file>.json: class_names, preprocessing steps, colour mode, input "
        "shape), then check its outputs against PyTorch's on a few of the run's val images.",
    )
    parser.add_argument(
        "target", metavar="RUN_DIR", help="a run directory (its best checkpoint) or a .ckpt file"
    )
    parser.add_argument("--format", choices=tuple(FORMATS), required=True, dest="fmt")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="the file to write (default: RUN_DIR/export/model.onnx or model.pt); an existing file is "
        "replaced only if it is an earlier export",
    )
    parser.add_argument("--force", action="store_true", help="replace --out even if it is some other file")
    args = parser.parse_args(argv)
    try:
        export(args.target, args.fmt, args.out, args.force)
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
