"""A data set of four IDX files (MNIST's layout): find, verify, and download it.

An :class:`IdxDataset` is the specification of one such data set (its folder name,
the four files with their checksums, the mirrors and the class names) and the code
that serves it. ``tinynet.datasets.mnist`` and ``tinynet.datasets.fashion_mnist``
are two instances.

Where the four files are looked for, in order:

1. ``path`` if given (the folder holding the four files). Nothing else is tried:
   a missing file there is an error naming the folder and the file.
2. ``$TINYNET_DATA/<name>``, when the ``TINYNET_DATA`` environment variable names
   a root folder of data sets (``<name>`` is :attr:`IdxDataset.name`, e.g. ``mnist``).
3. The user cache, ``$XDG_CACHE_HOME/tinynet/<name>`` (default
   ``~/.cache/tinynet/<name>``).
4. The data set's system folders, if any (where a Linux package installs it).

Each file may be gzipped (``train-images-idx3-ubyte.gz``) or raw
(``train-images-idx3-ubyte``). If no folder has all four and ``download=True``,
they are fetched into the cache from the mirrors.

Verification: with ``verify=True`` (the default) every file, local or downloaded,
must decompress to exactly the published bytes, checked by the SHA-256 of the
decompressed payload. Hashes of the ``.gz`` bytes would reject equally good
copies: mirrors and Linux packages re-compress the files or rewrite their gzip
headers. This costs about 0.1 s on top of the decompression that loading needs
anyway. ``verify=False`` keeps the structural checks (magic number, header dims,
sizes, labels below the number of classes, matching counts) and skips the hash,
for modified copies.

Once read, each file's array is cached uncompressed in the user cache
(:mod:`tinynet.datasets.decoded_cache`), so a later load maps it instead of
decompressing the file again (verified the same way: the published SHA-256 of the
payload); ``cache=False`` reads the files alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from . import decoded_cache
from . import download as _dl
from .idx import CorruptFileError, Payload, parse_images, parse_labels, read_payload

__all__ = ["SPLIT_FILES", "DatasetNotFoundError", "IdxDataset", "IdxFile"]

# The four files every IDX data set has, in load order.
SPLIT_FILES = ("train_images", "train_labels", "test_images", "test_labels")

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DatasetNotFoundError(FileNotFoundError):
    """The four files are in none of the searched folders (and were not fetched)."""


@dataclass(frozen=True)
class IdxFile:
    """One published IDX file."""

    name: str  # file name on the mirrors and on disk, without ".gz"
    sha256: str  # of the decompressed IDX payload
    size: int  # bytes of the decompressed IDX payload


@dataclass(frozen=True)
class IdxDataset:
    """The specification of a data set of four IDX files, and its loader.

    Parameters
    ----------
    name : folder name under ``$TINYNET_DATA`` and the cache; prefixes messages.
    files : an :class:`IdxFile` for each key of :data:`SPLIT_FILES`.
    mirrors : base URLs tried in order; a file name is appended to each.
    class_names : display name of each label, index = label (C names).
    system_dirs : folders searched last, where a system package installs it.
    image_shape : ``(rows, cols)`` of every image.
    """

    name: str
    files: Mapping[str, IdxFile]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()
    image_shape: tuple[int, int] = (28, 28)

    def __post_init__(self) -> None:
        if set(self.files) != set(SPLIT_FILES):
            raise ValueError(
                f"{self.name}: files must have the keys {SPLIT_FILES}, got "
                f"{tuple(self.files)}"
            )
        # Frozen all the way down: a spec is shared by every load of its data set.
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # ------------------------------------------------------------------ lookup
    def search_dirs(self) -> list[Path]:
        """The folders searched without an explicit path, in order."""
        dirs = []
        root = os.environ.get("TINYNET_DATA")
        if root:
            dirs.append(Path(root) / self.name)
        dirs.append(self.cache_dir())
        dirs.extend(self.system_dirs)
        return dirs

    def cache_dir(self) -> Path:
        """Where downloads go: ``$XDG_CACHE_HOME/tinynet/<name>``."""
        return _dl.cache_root() / self.name

    def find(
        self, path: str | os.PathLike[str] | None = None
    ) -> dict[str, Path] | None:
        """Paths of the four files in the first folder that has all of them.

        With ``path`` given, only that folder is looked at, and a missing folder or
        file raises ``FileNotFoundError`` naming it. Without, returns ``None`` when
        no searched folder has all four.
        """
        if path is not None:
            return self._files_required(Path(path))
        for folder in self.search_dirs():
            found, missing = self._files_in(folder)
            if not missing:
                return found
        return None

    def _files_required(self, folder: Path) -> dict[str, Path]:
        """The four files in ``folder``; ``FileNotFoundError`` names what lacks."""
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{self.name}: data folder {str(folder)!r} does not exist (it should "
                f"hold the four files: {self._names()})"
            )
        found, missing = self._files_in(folder)
        if missing:
            raise FileNotFoundError(
                f"{self.name}: data folder {str(folder)!r} lacks {', '.join(missing)} "
                "(gzipped or not)"
            )
        return found

    def _files_in(self, folder: Path) -> tuple[dict[str, Path], list[str]]:
        """The files present in ``folder``, and the ``.gz`` names missing."""
        found, missing = {}, []
        for key, spec in self.files.items():
            for candidate in (folder / (spec.name + ".gz"), folder / spec.name):
                if candidate.is_file():
                    found[key] = candidate
                    break
            else:
                missing.append(spec.name + ".gz")
        return found, missing

    def _names(self) -> str:
        return ", ".join(spec.name + ".gz" for spec in self.files.values())

    # ------------------------------------------------------------ verification
    def _check_payload(self, payload: Payload, spec: IdxFile) -> None:
        if len(payload.data) != spec.size:
            raise CorruptFileError(
                f"{payload.source}: decompressed size is {len(payload.data)} bytes, "
                f"expected {spec.size} for {self.name} {spec.name}"
            )
        digest = payload.sha256
        if digest != spec.sha256:
            raise CorruptFileError(
                f"{payload.source}: SHA-256 checksum mismatch for {self.name} "
                f"{spec.name}: expected {spec.sha256}, got {digest} (decompressed); "
                f"the file is damaged or not {self.name} - delete it and fetch it again"
            )

    def _load_file(
        self,
        key: str,
        path: Path,
        verify: bool,
        name: str | None = None,
        cache: bool = False,
    ) -> np.ndarray:
        spec = self.files[key]
        folder = self.decoded_cache_dir()
        if cache:
            expected = spec.sha256 if verify else None
            cached = decoded_cache.load(folder, spec.name, path, expected)
            if cached is not None:
                return cached
        payload = read_payload(path, name=name)
        # Structure first: "truncated" or "bad magic" says more than a hash mismatch.
        if key.endswith("images"):
            array = parse_images(payload, shape=self.image_shape)
        else:
            array = parse_labels(payload, num_classes=self.num_classes)
        if verify:
            self._check_payload(payload, spec)
        if cache:
            decoded_cache.store(folder, spec.name, path, array)
        return array

    def decoded_cache_dir(self) -> Path:
        """Where decoded arrays are cached (:mod:`tinynet.datasets.decoded_cache`):
        ``$XDG_CACHE_HOME/tinynet/decoded/<name>``."""
        return _dl.cache_root() / "decoded" / self.name

    # ---------------------------------------------------------------- download
    def download(
        self,
        dest: str | os.PathLike[str] | None = None,
        *,
        mirrors: tuple[str, ...] | None = None,
        quiet: bool = False,
    ) -> Path:
        """Fetch any missing files into ``dest`` (default: the user cache).

        Each file is verified (SHA-256 of the decompressed payload) before it is
        moved into place; a mirror that fails or serves bad bytes is skipped.
        Returns the folder. Raises :class:`DatasetNotFoundError` if a file could
        not be fetched from any mirror, naming the mirrors tried and where to put
        the files by hand.
        """
        folder = Path(dest) if dest is not None else self.cache_dir()
        mirrors = self.mirrors if mirrors is None else tuple(mirrors)
        _, missing = self._files_in(folder)
        by_name = {spec.name + ".gz": key for key, spec in self.files.items()}
        for filename in missing:
            key = by_name[filename]

            def verify(tmp: Path, key: str = key, name: str = filename) -> None:
                # Name the file as served: the temporary .part name means nothing.
                self._load_file(key, tmp, verify=True, name=f"downloaded {name}")

            try:
                _dl.fetch_verified(
                    filename,
                    folder,
                    mirrors,
                    verify,
                    stream=None if quiet else sys.stderr,
                )
            except _dl.DownloadError as exc:
                raise DatasetNotFoundError(self._not_found_message(str(exc))) from exc
        return folder

    def _not_found_message(self, detail: str) -> str:
        searched = "\n".join(f"  {d}" for d in self.search_dirs())
        return (
            f"{self.name}: the four files are in none of the searched folders.\n"
            f"{detail}\n"
            f"Put them ({self._names()}; gzipped or not) into one of:\n{searched}\n"
            "or pass load_data(path=FOLDER) / --data-dir FOLDER, or set TINYNET_DATA "
            f"to a folder that has a '{self.name}' subfolder with them."
        )

    # -------------------------------------------------------------------- load
    def load_data(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        download: bool = True,
        verify: bool = True,
        cache: bool = True,
    ) -> Arrays:
        """Load the data set as ``(x_train, y_train), (x_test, y_test)``.

        Parameters
        ----------
        path : folder holding the four IDX files; if given, only it is searched.
        download : fetch the files into the user cache when no folder has them.
        verify : check the SHA-256 of every file's decompressed payload (see the
            module docstring); structural checks are always made.
        cache : read each file's array from the decoded cache when it holds a
            valid entry for it, and store one after reading the file
            (:mod:`tinynet.datasets.decoded_cache`: later loads skip the gunzip).

        Returns
        -------
        x_train : (N_train, rows, cols) uint8, 0 = background, 255 = full ink
        y_train : (N_train,) uint8 labels, ``class_names[y]`` names them
        x_test : (N_test, rows, cols) uint8
        y_test : (N_test,) uint8

        Raises
        ------
        FileNotFoundError
            ``path`` is missing or lacks a file (named in the message).
        DatasetNotFoundError
            No folder has the files and downloading is off or failed.
        CorruptFileError
            A file is malformed or fails its checksum (``ValueError`` subclass).
        """
        files = self.find(path)
        if files is None:
            if not download:
                raise DatasetNotFoundError(
                    self._not_found_message("Downloading is off (download=False).")
                )
            files = self._files_required(self.download())
        arrays = {
            key: self._load_file(key, files[key], verify, cache=cache)
            for key in SPLIT_FILES
        }
        for split in ("train", "test"):
            x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if len(x) != len(y):
                raise CorruptFileError(
                    f"{self.name}: {files[f'{split}_images']} holds {len(x)} images "
                    f"but {files[f'{split}_labels']} holds {len(y)} labels"
                )
        return (
            (arrays["train_images"], arrays["train_labels"]),
            (arrays["test_images"], arrays["test_labels"]),
        )
