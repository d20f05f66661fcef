"""The pretrained-weights cache: where each library keeps its files, and downloads into it.

translearn keeps no cache of its own: torchvision's files live where torchvision looks for them
(``$TORCH_HOME/hub/checkpoints``) and timm's in the Hugging Face cache (``$HF_HOME/hub``), so a cache
filled by ``python -m translearn.weights fetch`` on a login node, by torchvision or by timm is one cache.

Pitfalls handled here:

* Two sweep cells that need the same uncached file start together. A file lock per file makes one of
  them download while the other waits and then reads the finished file; torch.hub downloads to a
  temporary name of its own and moves it into place only after the hash prefix in the file name checked
  out, so no reader ever sees half a file and a failed download leaves nothing behind. (The Hugging Face
  client does the same for timm's files.)
* An offline node must fail in seconds, not hang: ``TRANSLEARN_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``)
  never touches the network, and a download has a socket timeout (``TRANSLEARN_DOWNLOAD_TIMEOUT``, 30 s).
* Clusters often mirror the published files internally: ``TRANSLEARN_WEIGHTS_MIRROR=URL`` (http(s) or
  ``file://``) is a flat folder holding the files under their published names; downloads come from there.
"""

from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from filelock import FileLock

from translearn.errors import UserError
from translearn.log import log
from translearn.progress import enabled as progress_enabled

MIRROR_ENV = "TRANSLEARN_WEIGHTS_MIRROR"
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # the names timm publishes on the Hub, in its order


def offline() -> bool:
    return any(
        os.environ.get(var, "").lower() in ("1", "true", "yes")
        for var in ("TRANSLEARN_OFFLINE", "HF_HUB_OFFLINE")
    )


def torchvision_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(url: str) -> Path:
    """Where torch.hub (and so torchvision) keeps the file published at ``url``."""
    return torchvision_dir() / os.path.basename(urlparse(url).path)


def source_url(url: str) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{os.path.basename(urlparse(url).path)}" if mirror else url


def ensure_url(url: str, what: str, fetch_hint: str) -> Path:
    """The cached file of ``url``, downloaded once (locked, hash-checked, atomic) if it is not there."""
    dest = cache_path(url)
    if dest.is_file():
        return dest
    fix = (
        f"run `{fetch_hint}` where there is internet, or copy {os.path.basename(dest)} into {dest.parent} "
        "(or point TORCH_HOME at a cache that has it), or pass model.weights=PATH or model.weights=none"
    )
    if offline():
        raise UserError(f"{what} are not cached ({dest}) and TRANSLEARN_OFFLINE is set: {fix}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the weights cache {dest.parent} ({exc.strerror}); set TORCH_HOME"
        ) from None
    match = torch.hub.HASH_REGEX.search(dest.name)
    source = source_url(url)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if dest.is_file():  # another process finished it while we waited
            return dest
        log.info(f"downloading {source} to {dest}")
        with _socket_timeout():
            try:
                torch.hub.download_url_to_file(
                    source,
                    str(dest),
                    hash_prefix=match.group(1) if match else None,
                    progress=progress_enabled(),  # torch.hub's tqdm bar, in a terminal on rank 0
                )
            except (OSError, urllib.error.URLError, RuntimeError, ValueError) as exc:
                reason = str(getattr(exc, "reason", exc)).strip().splitlines()
                raise UserError(
                    f"{what} are not cached and could not be downloaded from {source} "
                    f"({reason[0] if reason else type(exc).__name__}): {fix}"
                ) from None
    return dest


class _socket_timeout:
    """urllib's opener has no timeout of its own: never hang on a network that is not there."""

    def __enter__(self) -> None:
        self.previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(float(os.environ.get("TRANSLEARN_DOWNLOAD_TIMEOUT", "30")))

    def __exit__(self, *exc: object) -> None:
        socket.setdefaulttimeout(self.previous)


# --- timm (the Hugging Face cache) --------------------------------------------------------------------


def timm_file(repo_id: str, what: str, fetch_hint: str) -> Path:
    """A timm model's weight file from the Hugging Face cache, offline first; downloaded if allowed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for filename in TIMM_FILES:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=True))
        except LocalEntryNotFoundError:
            continue
    fix = (
        f"run `{fetch_hint}` where there is internet (it fills the Hugging Face cache, HF_HOME), "
        "or pass model.weights=PATH or model.weights=none"
    )
    if offline():
        raise UserError(f"{what} are not in the Hugging Face cache and TRANSLEARN_OFFLINE is set: {fix}")
    unreachable = _unreachable(_hub_endpoint())
    if unreachable:
        raise UserError(f"{what} are not in the Hugging Face cache and {unreachable}: {fix}")
    log.info(f"downloading {what} from the Hugging Face Hub ({repo_id})")
    last: Exception | None = None
    with _socket_timeout():
        for filename in TIMM_FILES:
            try:
                return Path(hf_hub_download(repo_id, filename, etag_timeout=10))
            except EntryNotFoundError as exc:
                last = exc
                continue
            except Exception as exc:  # the Hub client raises many types for network trouble
                last = exc
                break
    reason = str(last).strip().splitlines()[0] if last and str(last).strip() else type(last).__name__
    raise UserError(f"{what} could not be downloaded ({reason}): {fix}")


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)  # HF_ENDPOINT, for a mirror


def _unreachable(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url``'s host cannot be reached, or None. One connection attempt, a few seconds at most.

    Why: the Hub client retries a failed request five times with back-off, so an offline node waited
    about 50 s and printed 22 lines of retries before the error.
    """
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host or any(os.environ.get(v) for v in PROXY_ENV):  # behind a proxy the host is not dialled
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{host} cannot be reached ({reason}; offline? TRANSLEARN_OFFLINE=1 skips the attempt)"


# --- listing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedFile:
    library: str
    name: str  # what to pass to `fetch` (torchvision) or the Hub repo (timm)
    path: Path
    size: int


def embedded_dir() -> Path:
    """Where model.weights=embedded keeps what translearn pretrained (``paths.cache_dir``/weights)."""
    home = os.environ.get("TRANSLEARN_CACHE") or str(Path.home() / ".cache" / "translearn")
    return Path(home).expanduser() / "weights"


def cached_files() -> list[CachedFile]:
    """Every finished weight file in the three caches (partial downloads and locks are not weights)."""
    from translearn.weights.catalog import torchvision_names_by_file

    out = []
    if embedded_dir().is_dir():  # model.weights=embedded: pretrained by translearn on the shapes base task
        for path in sorted(embedded_dir().glob("shapes-base-*.pt")):
            out.append(CachedFile("embedded", path.stem, path, path.stat().st_size))
    folder = torchvision_dir()
    if folder.is_dir():
        names = torchvision_names_by_file()
        for path in sorted(folder.iterdir()):
            if (
                path.is_file()
                and not path.name.startswith((".", "tmp"))
                and not path.name.endswith((".partial", ".bad"))
            ):
                out.append(CachedFile("torchvision", names.get(path.name, "?"), path, path.stat().st_size))
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return out
    try:
        info = scan_cache_dir()
    except (CacheNotFound, OSError, ValueError):
        return out
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.repo_id.startswith("timm/"):
            continue
        for revision in repo.revisions:
            for file in revision.files:
                if file.file_name in TIMM_FILES:
                    out.append(CachedFile("timm", repo.repo_id, file.file_path, file.size_on_disk))
    return out
