"""tinynet.files: only regular files are read, and never more than the cap."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tinynet.files import read_regular_file


def test_a_regular_file_and_a_symlink_to_one_are_read_whole(tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(b"\x89PNG and more")
    link = tmp_path / "link.png"
    link.symlink_to(path)
    assert read_regular_file(path, 100, "image") == b"\x89PNG and more"
    assert read_regular_file(str(link), 13, "image") == b"\x89PNG and more"
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular_file(tmp_path / "empty", 0, "image") == b""


def test_a_file_over_the_cap_is_refused_naming_the_limit(tmp_path):
    path = tmp_path / "big.npz"
    path.write_bytes(b"x" * 3000)
    with pytest.raises(ValueError, match=r"big.npz: larger than the 2.9\d* KB limit"):
        read_regular_file(path, 3000 - 1, "model")


def test_a_missing_path_and_a_dangling_symlink_are_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png: no such file"):
        read_regular_file(tmp_path / "nope.png", 100, "image")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="dangling: no such file"):
        read_regular_file(tmp_path / "dangling", 100, "image")


def test_a_directory_is_refused_saying_so(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not an ordinary image file"):
        read_regular_file(tmp_path, 100, "image")


def test_devices_and_symlinks_to_them_are_refused_without_reading(tmp_path):
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    for path in ("/dev/null", zero):
        with pytest.raises(ValueError, match="is a character device, not an ordinary"):
            read_regular_file(path, 2**40, "image")


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_regular_file(fifo, 100, "image")
        except ValueError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # let the daemon thread go, then fail
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        pytest.fail("reading a FIFO blocked")
    assert (
        outcome and "is a named pipe (FIFO), not an ordinary image file" in outcome[0]
    )


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ValueError, match="is a socket"):
            read_regular_file(path, 100, "image")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(ValueError, match="secret.png: permission denied"):
        read_regular_file(path, 100, "image")
