"""CIFAR-10, STL-10 and ImageFolder readers on small files written in the real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.data import ImageSet, cifar10, imagefolder, load, select_classes, stl10
from data_writers import write_cifar, write_png, write_stl


def test_cifar10_reads_the_pickles(tmp_path):
    truth = write_cifar(tmp_path)
    for split in ("train", "test"):
        s = cifar10(split, root=tmp_path)
        images, labels = truth[split]
        np.testing.assert_array_equal((s.images.numpy() * 255).round().astype(np.uint8), images)
        np.testing.assert_array_equal(s.labels.numpy(), labels)
        assert s.classes[1] == "automobile" and s.masks is None
    # root may also be the batches folder itself; n truncates
    s = cifar10("train", root=tmp_path / "cifar-10-batches-py", n=6)
    assert len(s) == 6


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as err:
        cifar10("train", root=tmp_path / "nowhere")
    assert "cifar-10-python.tar.gz" in str(err.value)
    write_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch"):
        cifar10("test", root=tmp_path)


def test_stl10_reads_column_major_binaries(tmp_path):
    truth = write_stl(tmp_path)
    for split in ("train", "test"):
        s = stl10(split, root=tmp_path)
        images, labels = truth[split]
        np.testing.assert_array_equal((s.images.numpy() * 255).round().astype(np.uint8), images)
        np.testing.assert_array_equal(s.labels.numpy(), labels)
    small = stl10("test", root=tmp_path, size=32)
    assert small.images.shape == (3, 3, 32, 32)
    assert 0 <= small.images.min() and small.images.max() <= 1


def test_stl10_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="stl10_binary"):
        stl10("train", root=tmp_path)
    write_stl(tmp_path)
    bad = tmp_path / "stl10_binary" / "train_X.bin"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(ValueError, match="train_X.bin"):
        stl10("train", root=tmp_path)


def _write_folder(root, rng, sizes=((20, 24),)):
    truth = {}
    for cls in ("cat", "ant", "bee"):
        for i, (h, w) in enumerate(sizes):
            array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            write_png(root / cls / f"img{i}.png", array)
            truth[(cls, i)] = array
    (root / "ant" / "notes.txt").write_text("not an image")
    return truth


def test_imagefolder_sorted_classes_exact_pixels(tmp_path):
    truth = _write_folder(tmp_path / "val", np.random.default_rng(0))
    s = imagefolder(tmp_path, "val", progress=False)
    assert s.classes == ["ant", "bee", "cat"]
    assert s.labels.tolist() == [0, 1, 2]
    for k, cls in enumerate(s.classes):
        np.testing.assert_array_equal(
            (s.images[k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
            truth[(cls, 0)])


def test_imagefolder_resize_and_centre_crop(tmp_path):
    rng = np.random.default_rng(1)
    _write_folder(tmp_path, rng, sizes=((40, 60), (50, 30)))
    with pytest.raises(ValueError, match="size="):
        imagefolder(tmp_path, progress=False)
    s = imagefolder(tmp_path, size=16, progress=False, max_per_class=1)
    assert s.images.shape == (3, 3, 16, 16)
    # a centre crop of a constant-colour image with a distinct border keeps only the centre
    border = np.zeros((64, 64, 3), np.uint8)
    border[8:-8, 8:-8] = 200
    write_png(tmp_path / "solo" / "x" / "a.png", border)
    crop = imagefolder(tmp_path / "solo", size=48, crop_fraction=0.75, progress=False)
    assert torch.allclose(crop.images, torch.full_like(crop.images, 200 / 255), atol=2 / 255)


def test_imagefolder_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        imagefolder(tmp_path / "nowhere", progress=False)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="broken.png"):
        imagefolder(tmp_path, progress=False)


def test_load_dispatch(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    write_cifar(tmp_path / "cifar10")
    assert len(load("cifar10", "test")) == 5
    assert load("digits", "test", size=8).images.shape[-1] == 8
    s = load("twin-cue", "test", variant="b-only", n=12)
    assert s.name == "twin-cue-b-only-test" and len(s) == 12
    with pytest.raises(ValueError, match="unknown data set"):
        load("mnist", "train")
    with pytest.raises(ValueError, match="variant"):
        load("digits", "train", variant="a-only")


def test_imageset_subset_and_select_classes():
    s = ImageSet(images=torch.rand(6, 1, 4, 4), labels=torch.tensor([0, 1, 2, 0, 1, 2]),
                 masks=None, classes=["a", "b", "c"], name="toy",
                 attributes={"id": torch.arange(6)})
    assert len(s.subset(torch.tensor([True, False] * 3))) == 3
    sel = select_classes(s, ["c", "a"])
    assert sel.classes == ["c", "a"]
    assert sel.labels.tolist() == [1, 0, 1, 0] and sel.attributes["id"].tolist() == [0, 2, 3, 5]
    with pytest.raises(ValueError, match="distinct"):
        select_classes(s, [0, 0])
    with pytest.raises(ValueError, match="labels"):
        ImageSet(images=torch.rand(2, 1, 4, 4), labels=torch.zeros(3, dtype=torch.long),
                 masks=None, classes=["a"], name="bad")


# Every loader in the registry either reads files (and must say which one is missing) or needs
# none (embedded / generated); a new loader must be added to one of the two lists.
FILE_LOADERS = {  # name -> (keyword naming the location, the folder the loader expects there)
    "cifar10": ("root", "cifar-10-batches-py"),
    "stl10": ("root", "stl10_binary"),
    "imagefolder": ("root", None),
    "clickme": ("path", None),
}
NO_FILES = {"digits", "twin-cue"}


def test_every_loader_is_classified():
    from advlens.data import LOADERS

    assert set(LOADERS) == set(FILE_LOADERS) | NO_FILES


@pytest.mark.parametrize("name", sorted(FILE_LOADERS))
@pytest.mark.parametrize("layout", ["absent", "empty", "empty-expected-folder"])
def test_missing_files_give_a_clear_error(tmp_path, name, layout):
    """Absent root, empty root, or the expected sub-folder present but empty: always a
    FileNotFoundError naming a path under the root (never NameError or a raw OSError)."""
    keyword, folder = FILE_LOADERS[name]
    root = tmp_path / "data"
    if layout != "absent":
        root.mkdir()
    if layout == "empty-expected-folder":
        (root / (folder or "some_class")).mkdir()
    kwargs = {keyword: root}
    if name in ("imagefolder", "clickme"):
        kwargs["progress"] = False
    with pytest.raises(FileNotFoundError) as err:
        load(name, "train", **kwargs)
    assert type(err.value) is FileNotFoundError
    assert str(root) in str(err.value), str(err.value)
    assert "not found" in str(err.value) or "does not exist" in str(err.value)
