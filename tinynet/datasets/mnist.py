"""The MNIST handwritten digits: find, verify, and (if needed) download.

Where the four files are looked for, in order:

1. ``path`` if given (the folder holding the four files). Nothing else is tried:
   a missing file there is an error naming the folder and the file.
2. ``$TINYNET_DATA/mnist``, when the ``TINYNET_DATA`` environment variable names
   a root folder of data sets.
3. The user cache, ``$XDG_CACHE_HOME/tinynet/mnist`` (default
   ``~/.cache/tinynet/mnist``).

Each file may be gzipped (``train-images-idx3-ubyte.gz``) or raw
(``train-images-idx3-ubyte``). If no folder has all four and ``download=True``,
they are fetched into the cache from :data:`MIRRORS`.

Verification: with ``verify=True`` (the default) every file, local or
downloaded, must decompress to exactly the original MNIST bytes, checked by the
SHA-256 of the decompressed payload (mirrors re-compress the files, so hashes of
the ``.gz`` bytes would differ between equally good copies). This costs about
0.1 s on top of the decompression that loading needs anyway. ``verify=False``
keeps the structural checks (magic number, header dims 28x28, sizes, labels 0-9,
matching counts) and skips the hash, for modified copies of MNIST.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import download as _dl
from .idx import CorruptFileError, Payload, parse_images, parse_labels, read_payload

__all__ = ["FILES", "MIRRORS", "MnistNotFoundError", "download", "find", "load_data"]


class _Spec(NamedTuple):
    name: str  # file name on the mirrors and on disk, without ".gz"
    sha256: str  # of the decompressed IDX payload
    size: int  # bytes of the decompressed IDX payload


FILES: dict[str, _Spec] = {
    "train_images": _Spec(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47040016,
    ),
    "train_labels": _Spec(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60008,
    ),
    "test_images": _Spec(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7840016,
    ),
    "test_labels": _Spec(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10008,
    ),
}

# Public copies of the original gzipped files, tried in order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class MnistNotFoundError(FileNotFoundError):
    """The four MNIST files are in none of the searched folders."""


def _search_dirs(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    dirs = []
    root = os.environ.get("TINYNET_DATA")
    if root:
        dirs.append(Path(root) / "mnist")
    dirs.append(_dl.cache_root() / "mnist")
    return dirs


def _files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The files of :data:`FILES` present in ``folder``, and the names missing."""
    found, missing = {}, []
    for key, spec in FILES.items():
        for candidate in (folder / (spec.name + ".gz"), folder / spec.name):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(spec.name + ".gz")
    return found, missing


def find(path: str | os.PathLike[str] | None = None) -> dict[str, Path] | None:
    """Paths of the four files in the first folder that has all of them.

    With ``path`` given, only that folder is looked at, and a missing folder or
    file raises ``FileNotFoundError`` naming it. Without, returns ``None`` when
    no searched folder has all four.
    """
    if path is not None:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"mnist: data folder {str(folder)!r} does not exist (it should hold "
                f"the four MNIST files: {_names()})"
            )
        found, missing = _files_in(folder)
        if missing:
            raise FileNotFoundError(
                f"mnist: data folder {str(folder)!r} lacks {', '.join(missing)} "
                "(gzipped or not)"
            )
        return found
    for folder in _search_dirs(None):
        found, missing = _files_in(folder)
        if not missing:
            return found
    return None


def _names() -> str:
    return ", ".join(spec.name + ".gz" for spec in FILES.values())


def _check_payload(payload: Payload, spec: _Spec) -> None:
    if len(payload.data) != spec.size:
        raise CorruptFileError(
            f"{payload.source}: decompressed size is {len(payload.data)} bytes, "
            f"expected {spec.size} for {spec.name}"
        )
    digest = payload.sha256
    if digest != spec.sha256:
        raise CorruptFileError(
            f"{payload.source}: SHA-256 checksum mismatch for {spec.name}: expected "
            f"{spec.sha256}, got {digest} (decompressed); the file is damaged or "
            "not MNIST - delete it and fetch it again"
        )


def _load_file(
    key: str, path: Path, verify: bool, name: str | None = None
) -> np.ndarray:
    spec = FILES[key]
    payload = read_payload(path, name=name)
    # Structure first: "truncated" or "bad magic" says more than a hash mismatch.
    if key.endswith("images"):
        array = parse_images(payload, shape=(28, 28))
    else:
        array = parse_labels(payload, num_classes=10)
    if verify:
        _check_payload(payload, spec)
    return array


def download(
    dest: str | os.PathLike[str] | None = None,
    *,
    mirrors: tuple[str, ...] | None = None,
    quiet: bool = False,
) -> Path:
    """Fetch any missing MNIST files into ``dest`` (default: the user cache).

    Each file is verified (SHA-256 of the decompressed payload) before it is
    moved into place; a mirror that fails or serves bad bytes is skipped.
    Returns the folder. Raises :class:`MnistNotFoundError` if a file could not be
    fetched from any mirror, naming the mirrors tried and where to put the files
    by hand.
    """
    folder = Path(dest) if dest is not None else _dl.cache_root() / "mnist"
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    _, missing = _files_in(folder)
    by_name = {spec.name + ".gz": key for key, spec in FILES.items()}
    for filename in missing:
        key = by_name[filename]

        def verify(tmp: Path, key: str = key, name: str = filename) -> None:
            # Name the file as served: the temporary .part name means nothing.
            _load_file(key, tmp, verify=True, name=f"downloaded {name}")

        try:
            _dl.fetch_verified(
                filename, folder, mirrors, verify, stream=None if quiet else sys.stderr
            )
        except _dl.DownloadError as exc:
            raise MnistNotFoundError(_not_found_message(str(exc))) from exc
    return folder


# load_data's ``download`` argument shadows the function of the same name.
_fetch_missing = download


def _not_found_message(detail: str) -> str:
    searched = "\n".join(f"  {d}" for d in _search_dirs(None))
    return (
        "mnist: the MNIST files are in none of the searched folders.\n"
        f"{detail}\n"
        f"Put the four files ({_names()}; gzipped or not) into one of:\n{searched}\n"
        "or pass load_data(path=FOLDER) / --data-dir FOLDER, or set TINYNET_DATA "
        "to a folder that has an 'mnist' subfolder with them."
    )


def load_data(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    verify: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    path : folder holding the four IDX files; if given, only it is searched.
    download : fetch the files into the user cache when no folder has them.
    verify : check the SHA-256 of every file's decompressed payload (see the
        module docstring); structural checks are always made.

    Returns
    -------
    x_train : (60000, 28, 28) uint8, 0 = background, 255 = full ink
    y_train : (60000,) uint8 digits 0-9
    x_test : (10000, 28, 28) uint8
    y_test : (10000,) uint8

    Raises
    ------
    FileNotFoundError
        ``path`` is missing or lacks a file (named in the message).
    MnistNotFoundError
        No folder has the files and downloading is off or failed.
    CorruptFileError
        A file is malformed or fails its checksum (``ValueError`` subclass).
    """
    files = find(path)
    if files is None:
        if not download:
            raise MnistNotFoundError(
                _not_found_message("Downloading is off (download=False).")
            )
        files = find(_fetch_missing())
        if files is None:  # the download put all four there: files went missing
            raise MnistNotFoundError(
                _not_found_message("The downloaded files are gone.")
            )
    arrays = {key: _load_file(key, files[key], verify) for key in FILES}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(x) != len(y):
            raise CorruptFileError(
                f"mnist: {files[f'{split}_images']} holds {len(x)} images but "
                f"{files[f'{split}_labels']} holds {len(y)} labels"
            )
    return (
        (arrays["train_images"], arrays["train_labels"]),
        (arrays["test_images"], arrays["test_labels"]),
    )
