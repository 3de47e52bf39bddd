"""Listing and statting a user's class folders: the order and checks of a plain walk, with no per-file waste (a
cached run lists and stats every file before its first step)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainlab.data.annotations import read_class_folders
from trainlab.errors import DataError


def write_tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (len(name) + 1))


def test_class_folders_are_listed_in_path_order_leaving_out_hidden_and_loose_files(tmp_path):
    # "a-b" sorts before "a/" as text but after folder "a" as a path: the order is the paths', class by class
    names = ["a-b/2.png", "a/sub/1.jpg", "a/1.png", "b/0.JPEG", "a/.hidden.png", ".cache/x.png", "a/notes.txt"]
    write_tree(tmp_path, [*names, "loose.png"])
    files = read_class_folders(tmp_path)
    assert files.paths == ["a/1.png", "a/sub/1.jpg", "a-b/2.png", "b/0.JPEG"]
    assert files.raw_labels == ["a", "a", "a-b", "b"]
    assert files.where == [str(tmp_path / "a"), str(tmp_path / "a"), str(tmp_path / "a-b"), str(tmp_path / "b")]


def test_file_stats_resolve_each_folder_once_not_each_file(tmp_path, monkeypatch):
    write_tree(tmp_path, [f"{label}/{number}.png" for label in "abc" for number in range(20)])
    files = read_class_folders(tmp_path)
    resolved: list[str] = []
    realpath = os.path.realpath

    def counting_realpath(path, *args, **kwargs):
        resolved.append(str(path))
        return realpath(path, *args, **kwargs)

    monkeypatch.setattr(os.path, "realpath", counting_realpath)
    stats = files.stats()
    assert stats == [(len(name) + 1, os.stat(tmp_path / name).st_mtime_ns) for name in files.paths]
    assert sorted(resolved) == sorted([str(tmp_path), *(str(tmp_path / label) for label in "abc")])


def test_a_linked_image_inside_the_folder_is_read_and_one_leading_out_is_refused(tmp_path):
    root = tmp_path / "images"
    write_tree(root, ["a/1.png", "b/2.png"])
    (root / "b" / "link.png").symlink_to(root / "a" / "1.png")
    (root / "c").symlink_to(root / "a", target_is_directory=True)  # a linked folder is not followed
    files = read_class_folders(root)
    assert files.paths == ["a/1.png", "b/2.png", "b/link.png"]
    assert files.stats()[2] == files.stats()[0]
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"y")
    (root / "b" / "out.png").symlink_to(outside)
    with pytest.raises(DataError) as raised:
        read_class_folders(root)
    assert str(raised.value) == (
        f"{root / 'b' / 'out.png'}: a link to {outside}, outside the data folder {root}; links out of the data "
        "folder are not followed: copy the file into it instead"
    )


def test_a_split_holding_every_decoded_image_in_order_is_the_decoded_tensor_not_a_copy(tmp_path):
    import torch

    from trainlab.data.file_datasets import Part, Prepared, take

    files = read_class_folders_of(tmp_path, ["a/0.png", "a/1.png", "b/2.png"])
    decoded = torch.arange(3 * 4, dtype=torch.uint8).view(3, 1, 2, 2)
    labels = torch.tensor([0, 0, 1])
    whole = take(Prepared([0, 1, 2], decoded), Part(files, [0, 1, 2]), labels, ("a", "b"))
    assert whole.images.data_ptr() == decoded.data_ptr() and whole.labels.tolist() == [0, 0, 1]
    part = take(Prepared([0, 1, 2], decoded), Part(files, [0, 2]), labels, ("a", "b"))
    assert part.images.data_ptr() != decoded.data_ptr()
    assert torch.equal(part.images, decoded[[0, 2]]) and part.labels.tolist() == [0, 1]


def read_class_folders_of(root: Path, names: list[str]):
    write_tree(root, names)
    return read_class_folders(root)
