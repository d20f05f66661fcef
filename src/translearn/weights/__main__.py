"""``python -m translearn.weights fetch|list``: fill the weights cache on a login node, train offline.

    python -m translearn.weights fetch resnet18 resnet50:IMAGENET1K_V2
    python -m translearn.weights fetch convnext_atto vit_tiny_patch16_224.augreg_in21k_ft_in1k --library timm
    python -m translearn.weights list

The files land where training reads them (``$TORCH_HOME/hub/checkpoints``, the Hugging Face cache), so
a shared ``TORCH_HOME``/``HF_HOME`` filled once serves every node. A cached torchvision file whose
content does not match the hash in its name is downloaded again (the file was cut short or corrupted).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

from translearn.errors import UserError, exit_with
from translearn.log import log
from translearn.weights import cache
from translearn.weights.catalog import parse_weights, timm_pretrained_cfg, torchvision_enum
from translearn.weights.files import read_state_dict


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m translearn.weights",
        description="Fill or list the pretrained-weights cache (for clusters whose nodes have no internet).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser(
        "fetch",
        help="download weights into the cache",
        description="Download weights into the cache that training reads. NAME is a model name; WEIGHTS a "
        "weight name (torchvision: IMAGENET1K_V1, ...; timm: a pretrained tag), default: the library's "
        "default (what model.weights=imagenet loads). Set TRANSLEARN_WEIGHTS_MIRROR=URL to download "
        "from a mirror folder holding the published files.",
    )
    fetch.add_argument("models", nargs="+", metavar="NAME[:WEIGHTS]")
    fetch.add_argument("--library", choices=("torchvision", "timm"), default="torchvision")
    sub.add_parser("list", help="show the cached weight files and where they are")
    return parser


def _rerun(command: str) -> str:
    """The fetch command to suggest; run with the offline switch set, suggesting itself went in a circle."""
    if not cache.offline():
        return command
    return f"env -u TRANSLEARN_OFFLINE -u HF_HUB_OFFLINE {command}"


def fetch(spec: str, library: str) -> Path:
    """Download (or verify) one model's weights; returns the cached file."""
    name, _, weights = spec.partition(":")
    choice = parse_weights(library, name, weights or "imagenet")
    if choice.kind != "published":
        raise UserError(f"{spec}: fetch takes NAME or NAME:WEIGHTS with a weight name, not '{weights}'")
    if library == "timm":
        cfg = timm_pretrained_cfg(choice)
        hint = _rerun(f"python -m translearn.weights fetch {choice.arch}.{choice.name} --library timm")
        if cfg.hf_hub_id:
            path = cache.timm_file(cfg.hf_hub_id, f"timm {choice.arch}.{choice.name} weights", hint)
        else:
            path = cache.ensure_url(cfg.url, f"timm {choice.arch}.{choice.name} weights", hint)
        read_state_dict(path, f"delete {path} and fetch it again")
        log.info(f"timm {choice.arch}.{choice.name}: {path} ({_mb(path)})")
        return path
    enum = torchvision_enum(choice)
    label = f"{choice.arch}:{enum.name}"
    path = cache.cache_path(enum.url)
    if path.is_file() and not _hash_ok(path):
        log.info(f"{path} does not match the hash in its name; downloading it again")
        bad = path.with_name(path.name + ".bad")
        path.replace(bad)  # kept until the new copy is in place, then removed
        try:
            cache.ensure_url(
                enum.url, f"{choice.label} weights", _rerun(f"python -m translearn.weights fetch {label}")
            )
        except UserError:
            bad.replace(path)  # put the old file back: nothing is lost on failure
            raise
        bad.unlink()
        status = "downloaded again"
    elif path.is_file():
        status = "already cached"
    else:
        cache.ensure_url(
            enum.url, f"{choice.label} weights", _rerun(f"python -m translearn.weights fetch {label}")
        )
        status = "downloaded"
    read_state_dict(path, f"delete {path} and fetch it again")
    check = f", sha256 {_prefix(path)}… matches its name" if _prefix(path) else ""
    log.info(f"{label} {status}: {path} ({_mb(path)}{check})")
    return path


def _prefix(path: Path) -> str | None:
    match = torch.hub.HASH_REGEX.search(path.name)
    return match.group(1) if match else None


def _hash_ok(path: Path) -> bool:
    prefix = _prefix(path)
    if not prefix:
        return True
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest().startswith(prefix)


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def list_cache() -> None:
    files = cache.cached_files()
    print(f"embedded (model.weights=embedded): {cache.embedded_dir()}")
    print(f"torchvision cache: {cache.torchvision_dir()}")
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        print(f"timm cache (Hugging Face): {HF_HUB_CACHE}")
    except ImportError:
        pass
    if not files:
        print("no weight files cached")
        return
    width = max(len(f.name) for f in files)
    for f in files:
        print(f"  {f.library:<11} {f.name:<{width}} {f.size / 1e6:9.1f} MB  {f.path}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            list_cache()
            return
        for spec in args.models:
            fetch(spec, args.library)
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
