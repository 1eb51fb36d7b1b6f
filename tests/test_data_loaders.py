"""CIFAR-10, STL-10 and ImageFolder readers on small files written in the real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.data import ImageSet, cifar10, imagefolder, load, select_classes, stl10
from data_writers import py2_pickle, write_cifar, write_png, write_stl


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


def test_a_root_given_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """``root="~/..."`` passed to a loader directly (``require`` already expanded it) read as a
    folder named "~" in the current directory: not found."""
    monkeypatch.setenv("HOME", str(tmp_path))
    write_cifar(tmp_path / "cifar")
    write_stl(tmp_path / "stl", n=20)
    assert len(cifar10("test", root="~/cifar")) > 0
    assert len(stl10("test", root="~/stl")) > 0


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as err:
        cifar10("train", root=tmp_path / "nowhere")
    assert "cifar-10-python.tar.gz" in str(err.value)
    write_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch"):
        cifar10("test", root=tmp_path)
    # rows of 2 images each: reshape(-1, 3, 32, 32) read them as twice as many images
    import pickle

    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 6144), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(ValueError, match=r"test_batch.*shape \(2, 6144\), expected \(N, 3072\)"):
        cifar10("test", root=tmp_path)


@pytest.mark.parametrize("protocol", ["python2", 2, 4, 5])
def test_cifar10_reads_batches_pickled_as_the_release_and_python3_write_them(tmp_path, protocol):
    """The release's batches are Python 2 cPickle at protocol 2 with numpy 1.x globals; a copy
    saved again by Python 3 stores bytes through ``_codecs.encode`` (protocol 2) and arrays
    through numpy 2's ``numpy._core`` globals (``_frombuffer`` at protocol 5). All of them load
    through the restricted unpickler, to the arrays written."""
    import pickle

    truth = write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    for path in folder.iterdir():
        obj = pickle.loads(path.read_bytes())  # our own file, written above
        path.write_bytes(py2_pickle(obj) if protocol == "python2"
                         else pickle.dumps(obj, protocol=protocol))
    for split in ("train", "test"):
        s = cifar10(split, root=tmp_path)
        np.testing.assert_array_equal((s.images.numpy() * 255).round().astype(np.uint8),
                                      truth[split][0])
        np.testing.assert_array_equal(s.labels.numpy(), truth[split][1])
        assert s.classes[1] == "automobile"


def test_a_cifar10_batch_pickle_that_calls_a_function_is_refused_before_it_runs(tmp_path):
    """A pickle can call any function it names: ``pickle.load`` ran the one a file passed off
    as a CIFAR-10 batch named (here os.mkdir) while reading it."""
    import os
    import pickle

    marker = tmp_path / "it-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(path.read_bytes())
    batch[b"filenames"] = Payload()
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch .*asks for \w+\.mkdir.*could run code"):
        cifar10("test", root=tmp_path)
    assert not marker.exists()


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
    assert torch.equal(stl10("test", root=tmp_path, size=np.int64(32)).images, small.images)
    for bad in (0, 32.0):
        with pytest.raises(ValueError, match="size must be None"):
            stl10("test", root=tmp_path, size=bad)


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


# torchvision.datasets.folder.IMG_EXTENSIONS (0.29), transcribed
TORCHVISION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff",
                          ".webp")


def test_imagefolder_reads_the_files_torchvisions_imagefolder_reads(tmp_path):
    from PIL import Image

    names = ["a.jpg", "b.JPEG", "c.png", "d.ppm", "e.bmp", "f.pgm", "g.PGM", "h.tif", "i.tiff",
             "j.webp", "k.gif", "l.txt"]
    for level, name in enumerate(names):
        value = 20 * (level + 1)
        img = Image.new("L" if "pgm" in name.lower() else "RGB", (8, 8),
                        value if "pgm" in name.lower() else (value,) * 3)
        (tmp_path / "cls").mkdir(exist_ok=True)
        img.save(tmp_path / "cls" / name, format={".txt": "PNG"}.get(name[-4:], None),
                 **({"lossless": True} if name.endswith(".webp") else {}))
    # torchvision's has_file_allowed_extension: the lower-cased name ends with one of them
    kept = [i for i, n in enumerate(names) if n.lower().endswith(TORCHVISION_EXTENSIONS)]
    s = imagefolder(tmp_path, progress=False)
    assert len(s) == len(kept) == 10
    means = s.images.mean(dim=(1, 2, 3)).mul(255).numpy()
    np.testing.assert_allclose(means, [20 * (i + 1) for i in kept], atol=1.5)
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        return
    assert [p.rsplit("/", 1)[-1] for p, _ in ImageFolder(str(tmp_path)).samples] == [
        names[i] for i in kept]


def test_imagefolder_refuses_a_folder_without_images_as_torchvision_does(tmp_path):
    """An image-less folder among the classes ('lost+found', a macOS zip's '__MACOSX' of
    '._' files) would take a label and shift every later class by one (accuracy ~0.1 %)."""
    rng = np.random.default_rng(0)
    for k in range(2):
        write_png(tmp_path / "val" / f"n{k:08d}" / "x.png",
                  rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert imagefolder(tmp_path, "val", progress=False).labels.tolist() == [0, 1]
    (tmp_path / "val" / "lost+found").mkdir()
    with pytest.raises(ValueError, match=r"1 folder\(s\) .* hold no image, e.g. lost\+found"):
        imagefolder(tmp_path, "val", progress=False)
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        return
    with pytest.raises(FileNotFoundError, match=r"no valid file for the classes lost\+found"):
        ImageFolder(str(tmp_path / "val"))


def test_imagefolder_reads_sub_folders_as_torchvisions_imagefolder(tmp_path):
    """Tiny-ImageNet's train layout (<wnid>/images/*.JPEG) and a class with images at two
    depths: the same files in the same order as torchvision's ImageFolder."""
    rng = np.random.default_rng(0)
    for name in ("b/images/x0.png", "b/images/x1.png", "b/top.png", "b/a-b/y.png",
                 "a/images/z.png", "a/.hidden/w.png"):
        write_png(tmp_path / name, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "a" / "a_boxes.txt").write_text("not an image")
    s = imagefolder(tmp_path, progress=False)
    expected = ["a/images/z.png", "b/top.png", "b/a-b/y.png", "b/images/x0.png",
                "b/images/x1.png"]  # sorted(os.walk()), hidden folders skipped
    assert len(s) == 5 and s.labels.tolist() == [0, 1, 1, 1, 1]
    from PIL import Image

    for image, name in zip(s.images, expected, strict=True):
        truth = np.asarray(Image.open(tmp_path / name))
        np.testing.assert_array_equal((image.permute(1, 2, 0) * 255).round().byte().numpy(), truth)
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        return
    samples = ImageFolder(str(tmp_path)).samples
    assert [p for p, _ in samples if "/." not in p] == [str(tmp_path / n) for n in expected]


def _torchvision_eval(array, short, size, resample):
    """Transcription of torchvision's Resize(short) + CenterCrop(size) geometry on PIL."""
    from PIL import Image

    h, w = array.shape[:2]
    # _compute_resized_output_size: the longer side is truncated
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    img = Image.fromarray(array)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample)
    out = np.asarray(img)
    top = int(round((new_h - size) / 2.0))  # center_crop
    left = int(round((new_w - size) / 2.0))
    return out[top:top + size, left:left + size]


ODD_SIZES = ((500, 339), (379, 256), (257, 300), (300, 379))  # (width, height)


@pytest.mark.parametrize("w,h", ODD_SIZES)
def test_imagefolder_resize_and_crop_match_torchvision(tmp_path, w, h):
    from PIL import Image

    array = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    write_png(tmp_path / "c" / "x.png", array)
    got = imagefolder(tmp_path, size=224, progress=False).images[0]
    got = (got.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, _torchvision_eval(array, 256, 224, Image.BILINEAR))
    try:
        import torchvision.transforms.functional as TF
    except ImportError:
        return
    ref = TF.center_crop(TF.resize(Image.fromarray(array), 256), 224)
    np.testing.assert_array_equal(got, np.asarray(ref))


@pytest.mark.parametrize("w,h", ODD_SIZES)
@pytest.mark.parametrize("crop,interpolation", [(0.9, "bicubic"), (0.96, "bicubic"),
                                                (0.875, "bilinear")])
def test_imagefolder_takes_timms_crop_pct_and_interpolation(tmp_path, w, h, crop,
                                                            interpolation):
    import math

    from PIL import Image

    array = np.random.default_rng(w + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    write_png(tmp_path / "c" / "x.png", array)
    got = imagefolder(tmp_path, size=224, crop_fraction=crop, interpolation=interpolation,
                      progress=False).images[0]
    got = (got.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[interpolation]
    short = math.floor(224 / crop)  # timm's transforms_imagenet_eval scale_size
    np.testing.assert_array_equal(got, _torchvision_eval(array, short, 224, resample))
    try:
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode
    except ImportError:
        return
    mode = getattr(InterpolationMode, interpolation.upper())
    ref = TF.center_crop(TF.resize(Image.fromarray(array), short, interpolation=mode), 224)
    np.testing.assert_array_equal(got, np.asarray(ref))


def test_imagefolder_names_an_unknown_interpolation(tmp_path):
    write_png(tmp_path / "c" / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="interpolation must be one of .*bicubic.*'cubic'"):
        imagefolder(tmp_path, size=4, interpolation="cubic", progress=False)


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


def test_load_dispatches_to_a_user_loader(monkeypatch):
    """README: add a loader to LOADERS. Its key may be spelled in any case, and a loader taking
    ``**kw`` gets the keywords it forwards (both were refused by ``load``)."""
    from advlens.data import LOADERS

    def tiny(split="train", n=4, **kw):
        return ImageSet(images=torch.rand(n, 1, 4, 4), labels=torch.zeros(n, dtype=torch.long),
                        masks=None, classes=["a"], name=f"tiny-{split}-{sorted(kw)}")

    monkeypatch.setitem(LOADERS, "MyTiny", tiny)
    assert len(load("MyTiny", "test", n=3)) == 3 and len(load("mytiny")) == 4
    assert load("MyTiny", "test", flavour="x").name == "tiny-test-['flavour']"
    with pytest.raises(ValueError, match="takes no argument"):
        load("digits", "train", flavour="x")  # a loader without **kw still refuses it


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
    with pytest.raises(ValueError, match=r"distinct classes of toy .*got \['dogg'\]"):
        select_classes(s, ["dogg"])  # was Python's bare "'dogg' is not in list"
    with pytest.raises(ValueError, match="labels"):
        ImageSet(images=torch.rand(2, 1, 4, 4), labels=torch.zeros(3, dtype=torch.long),
                 masks=None, classes=["a"], name="bad")


def test_select_classes_refuses_a_string_fractions_and_none_and_takes_a_generator():
    """A string was read letter by letter ("12": classes '1' and '2' of a set with a class
    '12' too), 1.7 and True were the classes 1 and 1, a generator was used up by the name
    check (an IndexError from torch), and no class at all failed as an IndexError too."""
    names = [str(i) for i in range(13)]
    s = ImageSet(images=torch.rand(26, 1, 2, 2), labels=torch.arange(26) % 13, masks=None,
                 classes=names, name="toy")
    with pytest.raises(TypeError, match=r"list of class indices or names; got '12': pass \['12'\]"):
        select_classes(s, "12")
    assert select_classes(s, ["12"]).classes == ["12"] and len(select_classes(s, ["12"])) == 2
    for bad in ([1.7, 2.2], [True, 2], []):
        with pytest.raises(ValueError, match="one or more distinct classes of toy"):
            select_classes(s, bad)
    with pytest.raises(TypeError, match="got 3: pass"):
        select_classes(s, 3)
    expected = select_classes(s, [4, 1])  # the reference: the same classes as a list
    for given in ((c for c in [4, 1]), np.array([4, 1]), torch.tensor([4, 1]), ["4", "1"]):
        got = select_classes(s, given)
        assert got.classes == ["4", "1"] and torch.equal(got.labels, expected.labels)
        assert torch.equal(got.images, expected.images)


def test_select_classes_relabels_class_attributes_with_the_labels(tmp_path, monkeypatch):
    """Twin-cue ``cue_a_class``/``cue_b_class`` stayed in the old class indices while the labels
    were relabelled 0..k-1: ``cue_agreement`` of a ``both`` subset read 0.0 instead of 1.0."""
    from advlens.data import cue_agreement, twin_cue

    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    for variant in ("both", "a-only"):
        s = twin_cue("test", variant, n=200)
        sub = select_classes(s, [7, 3])
        keep = (s.labels == 7) | (s.labels == 3)
        # reference: the new index of each kept class by hand (7 -> 0, 3 -> 1, others -> -1)
        new = {7: 0, 3: 1}
        for key in ("cue_a_class", "cue_b_class"):
            want = [new.get(int(c), -1) for c in s.attributes[key][keep]]
            assert sub.attributes[key].tolist() == want
        agree = {f"agree_{c}": float(np.mean([new.get(int(k), -1) == int(y) for k, y in zip(
            s.attributes[f"cue_{c}_class"][keep], sub.labels, strict=True)])) for c in "ab"}
        assert cue_agreement(sub) == pytest.approx(agree)
        if variant == "both":
            assert agree == {"agree_a": 1.0, "agree_b": 1.0}
    plain = ImageSet(images=torch.rand(3, 1, 2, 2), labels=torch.tensor([0, 1, 2]), masks=None,
                     classes=["a", "b", "c"], name="toy",
                     attributes={"id": torch.tensor([5, 6, 7])})
    assert select_classes(plain, [2]).attributes["id"].tolist() == [7]  # not a class index


def test_select_classes_twice_keeps_an_unkept_attribute_class_unkept():
    """A second selection indexed the first's -1 (a cue class not kept) as the last class:
    reordering the kept classes turned every -1 into a valid class index."""
    s = ImageSet(images=torch.rand(6, 1, 2, 2), labels=torch.tensor([3, 5, 7, 3, 5, 7]),
                 masks=None, classes=[str(i) for i in range(10)], name="toy",
                 attributes={"cue_b_class": torch.tensor([3, 1, 7, 9, 5, 3])})
    once = select_classes(s, [3, 5, 7])
    assert once.attributes["cue_b_class"].tolist() == [0, -1, 2, -1, 1, 0]
    twice = select_classes(once, [2, 1, 0])  # by hand: 0 -> 2, 1 -> 1, 2 -> 0, -1 stays
    assert twice.attributes["cue_b_class"].tolist() == [2, -1, 0, -1, 1, 2]
    assert twice.labels.tolist() == [2, 1, 0, 2, 1, 0]


def test_select_classes_takes_whole_numbers_as_model_config_does():
    """ModelConfig(classes=) takes 3.0 as class 3; select_classes refused [3.0, 5.0] (a float
    NumPy array too) and a list of 0-dim tensors (``list(labels.unique())``), all taken before,
    with a message that did not say what was wrong."""
    s = ImageSet(images=torch.rand(20, 1, 2, 2), labels=torch.arange(20) % 10, masks=None,
                 classes=[str(i) for i in range(10)], name="toy")
    expected = select_classes(s, [3, 5])
    for given in ([3.0, 5.0], np.array([3.0, 5.0]), list(torch.tensor([3, 5]))):
        got = select_classes(s, given)
        assert got.classes == ["3", "5"] and torch.equal(got.labels, expected.labels)
    with pytest.raises(ValueError, match=r"\[1\.5\] not whole numbers"):
        select_classes(s, [1.5, 2])


def test_imageset_subset_takes_a_list_of_bools_as_a_mask():
    """A boolean mask given as a Python list was turned into the indices 0 and 1."""
    s = ImageSet(images=torch.arange(4.0).view(4, 1, 1, 1), labels=torch.arange(4),
                 masks=None, classes=list("abcd"), name="toy")
    keep = [True, False, True, False]
    expected = [i for i, k in enumerate(keep) if k]  # boolean indexing, by definition
    assert s.subset(keep).labels.tolist() == expected
    assert s.subset(np.array(keep)).labels.tolist() == expected
    assert s.subset([3, 1]).labels.tolist() == [3, 1] and len(s.subset([])) == 0


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


def _write_kaggle(root, rng, wnids, labels_of_images, mapping=None):
    """Kaggle's ImageNet layout: JPEGs flat in ILSVRC/Data/CLS-LOC/val, the solution CSV (its
    PredictionString: wnid and box, repeated per box) and the synset mapping at the top."""
    from PIL import Image

    val = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    rows = ["ImageId,PredictionString"]
    for k, label in enumerate(labels_of_images):
        name = f"ILSVRC2012_val_{k + 1:08d}"
        pixels = rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(val / f"{name}.JPEG")
        rows.append(f"{name},{wnids[label]} 1 2 10 12 {wnids[label]} 3 4 9 9 ")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows[:1] + rows[:0:-1]) + "\n")
    lines = [f"{w} a class, its name" for w in (mapping or wnids)]
    (root / "LOC_synset_mapping.txt").write_text("\n".join(lines) + "\n")
    return val


def test_imagefolder_reads_kaggle_flat_val_as_the_same_images_in_class_folders(tmp_path):
    """The flat validation folder of Kaggle's ImageNet download gives the images, labels and
    order of the same JPEGs sorted into wnid folders (valprep.sh), so n / seed / max_per_class
    draw the same images either way."""
    import shutil

    from advlens.data.imagefolder import imagenet_wnids

    wnids = ["n01440764", "n01443537", "n01484850"]
    labels = [2, 0, 1, 0, 2, 2, 1]
    imagenet = imagenet_wnids()  # Kaggle's synset mapping lists all 1,000
    val = _write_kaggle(tmp_path / "kaggle", np.random.default_rng(3), wnids, labels, imagenet)
    for k, label in enumerate(labels):
        name = f"ILSVRC2012_val_{k + 1:08d}.JPEG"
        (tmp_path / "sorted" / "val" / wnids[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(val / name, tmp_path / "sorted" / "val" / wnids[label] / name)
    for kw in ({}, {"n": 4, "seed": 1}, {"max_per_class": 1}, {"size": 16}):
        ref = imagefolder(tmp_path / "sorted", "val", progress=False, **kw)
        for got in (imagefolder(tmp_path / "kaggle", "val", progress=False, **kw),  # the top
                    imagefolder(val, progress=False, **kw),  # the flat folder, CSV found above
                    load("imagenet", "val", root=str(tmp_path / "kaggle"), progress=False, **kw)):
            assert got.classes == ref.classes == imagenet and imagenet[:3] == wnids
            assert torch.equal(got.labels, ref.labels) and torch.equal(got.images, ref.images)
    assert sorted(imagefolder(val, progress=False).labels.tolist()) == sorted(labels)


def test_imagefolder_kaggle_labels_index_by_the_synset_mapping(tmp_path):
    """With a class of the mapping absent from the folder, later labels keep the models'
    indices (the mapping's order), where sorting the present wnids would shift them."""
    wnids = ["n01440764", "n01443537", "n01484850"]
    mapping = ["n01440764", "n01443537", "n01473000", "n01484850"]
    val = _write_kaggle(tmp_path, np.random.default_rng(4), wnids, [2, 0, 1], mapping)
    s = imagefolder(val, progress=False)
    assert s.classes == mapping
    assert sorted(s.labels.tolist()) == [0, 1, 3]
    (tmp_path / "LOC_synset_mapping.txt").unlink()  # no mapping: the CSV's wnids, sorted
    assert sorted(imagefolder(val, progress=False).labels.tolist()) == [0, 1, 2]


def test_imagefolder_labels_a_subset_of_imagenet_classes_as_the_models_index_them(tmp_path):
    """A copy of ImageNet holding some of the 1,000 wnid folders (a trial subset): each image is
    labelled by its class's index among ImageNet-1k's classes (torchvision's category names
    say which), not by its folder's position among those present; flat with Kaggle's CSV and
    no synset mapping, alike."""
    import shutil

    from torchvision.models import ResNet50_Weights

    names = {"n01440764": "tench", "n02105855": "Shetland sheepdog", "n15075141": "toilet tissue"}
    wnids = sorted(names)
    val = _write_kaggle(tmp_path / "kaggle", np.random.default_rng(7), wnids, [2, 0, 1, 1])
    (tmp_path / "kaggle" / "LOC_synset_mapping.txt").unlink()
    for k, label in enumerate([2, 0, 1, 1]):
        name = f"ILSVRC2012_val_{k + 1:08d}.JPEG"
        (tmp_path / "sorted" / wnids[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(val / name, tmp_path / "sorted" / wnids[label] / name)
    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    for got in (imagefolder(tmp_path / "sorted", progress=False), imagefolder(val, progress=False)):
        assert len(got.classes) == len(categories) == 1000
        assert [categories[k] for k in got.labels.tolist()] == [
            names[w] for w in ("n01440764", "n02105855", "n02105855", "n15075141")]
    # folders not named by ImageNet-1k wnids keep their sorted positions
    (tmp_path / "sorted" / "n15075141").rename(tmp_path / "sorted" / "n99999999")
    assert imagefolder(tmp_path / "sorted", progress=False).labels.tolist() == [0, 1, 1, 2]


def test_imagefolder_refuses_a_stray_folder_beside_imagenet_wnid_folders(tmp_path):
    """A Synology NAS's "@eaDir" of thumbnails beside the wnid folders sorted first, took label
    0 and moved every wnid folder off the published models' index (as torchvision's
    ImageFolder does); other wnids (ImageNet-21k's) keep the sorted order."""
    from advlens.data.imagefolder import imagenet_wnids

    wnids = imagenet_wnids()
    rng = np.random.default_rng(0)
    for name in (wnids[0], wnids[500], "@eaDir"):
        write_png(tmp_path / name / "x.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"1 are not, e\.g\. @eaDir.*move them out"):
        imagefolder(tmp_path, progress=False)
    (tmp_path / "@eaDir" / "x.png").rename(tmp_path / wnids[0] / "y.png")
    (tmp_path / "@eaDir").rmdir()
    assert imagefolder(tmp_path, progress=False).labels.tolist() == [0, 0, 500]


def test_imagefolder_labels_imagenetv2_folders_by_their_number(tmp_path):
    """ImageNetV2 names its 1,000 class folders by the ImageNet index, "0" ... "999" (its
    loader labels an image int(folder)); sorted as text, folder "10" got label 2."""
    rng = np.random.default_rng(0)
    write_png(tmp_path / "0" / "x.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    for i in range(1, 1000):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "x.png").symlink_to(tmp_path / "0" / "x.png")
    s = imagefolder(tmp_path, progress=False)
    assert s.classes == [str(i) for i in range(1000)]
    assert s.labels.tolist() == list(range(1000))


def test_imagefolder_names_the_official_val_tar_and_devkit_ground_truth(tmp_path):
    """The official validation tar unpacks its images flat ("images not found" said otherwise);
    the devkit's ground truth (ILSVRC2012_IDs in meta.mat's order) given as labels= was called
    corrupt, to be deleted and downloaded again."""
    rng = np.random.default_rng(0)
    for i in (1, 2):
        write_png(tmp_path / f"ILSVRC2012_val_{i:08d}.png",
                  rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match=r"images lying flat .*valprep\.sh"):
        imagefolder(tmp_path, progress=False)
    truth = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("490\n361\n")
    with pytest.raises(ValueError, match=r"devkit's .*meta\.mat order") as err:
        imagefolder(tmp_path, labels=truth, progress=False)
    assert "download" not in str(err.value)


def test_imagefolder_kaggle_flat_refuses_unlabelled_images_and_bad_csv(tmp_path):
    val = _write_kaggle(tmp_path, np.random.default_rng(5), ["n01440764", "n01443537"], [0, 1])
    write_png(val / "stray.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1 image\(s\) under .* have no row in .*stray\.png"):
        imagefolder(val, progress=False)
    (val / "stray.png").unlink()
    (tmp_path / "LOC_val_solution.csv").write_text("id,label\nILSVRC2012_val_00000001,n01\n")
    with pytest.raises(ValueError, match="expected the header 'ImageId,PredictionString'"):
        imagefolder(val, progress=False)
    (tmp_path / "LOC_val_solution.csv").unlink()
    with pytest.raises(FileNotFoundError, match="inside class folders .*LOC_val_solution.csv"):
        imagefolder(val, progress=False)
    with pytest.raises(FileNotFoundError, match="image labels"):
        imagefolder(val, labels=tmp_path / "nope.csv", progress=False)


def test_imagefolder_kaggle_csv_saved_with_a_bom_crlf_or_file_names_reads_alike(tmp_path):
    """The solution CSV re-saved by Excel / PowerShell (UTF-8 byte-order mark, CRLF line ends),
    or listing the images' file names, labels the images as Kaggle's own CSV does."""
    wnids = ["n01440764", "n01443537", "n01484850"]
    val = _write_kaggle(tmp_path, np.random.default_rng(6), wnids, [2, 0, 1, 1])
    ref = imagefolder(val, progress=False)
    csv_path, synsets = tmp_path / "LOC_val_solution.csv", tmp_path / "LOC_synset_mapping.txt"
    text, mapping = csv_path.read_text(), synsets.read_text()
    with_names = text.replace(",n0", ".JPEG,n0")
    assert with_names.count(".JPEG,") == 4
    for csv_text, mapping_text in ((text, mapping), (with_names, mapping)):
        csv_path.write_bytes(b"\xef\xbb\xbf" + csv_text.replace("\n", "\r\n").encode())
        synsets.write_bytes(b"\xef\xbb\xbf" + mapping_text.replace("\n", "\r\n").encode())
        got = imagefolder(val, progress=False)
        assert got.classes == ref.classes == wnids
        assert torch.equal(got.labels, ref.labels) and torch.equal(got.images, ref.images)


@pytest.mark.parametrize("workers", [1, 3])
def test_imagefolder_batches_read_the_images_imagefolder_reads(tmp_path, workers):
    """The batched reader (the published models' top-1 accuracy on all 50,000 validation
    images, which as one tensor take 30 GB) gives imagefolder's pixels, labels and order, the
    last batch short, a Kaggle flat folder and n / seed alike."""
    from advlens.data.imagefolder import imagefolder_batches

    rng = np.random.default_rng(5)
    for k, cls in enumerate(("ant", "bee", "cat")):
        for j in range(3 + k):
            side = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
            write_png(tmp_path / "val" / cls / f"{j}.png",
                      rng.integers(0, 256, (*side, 3), dtype=np.uint8))
    for kw in ({"size": 16}, {"size": 16, "n": 5, "seed": 2},
               {"size": 12, "crop_fraction": 0.9, "interpolation": "bicubic"}):
        ref = imagefolder(tmp_path, "val", progress=False, **kw)
        batches = list(imagefolder_batches(tmp_path, "val", batch_size=4, workers=workers,
                                           progress=False, **kw))
        assert [len(y) for _, y in batches][:-1] == [4] * (len(batches) - 1)
        assert torch.equal(torch.cat([x for x, _ in batches]), ref.images)
        assert torch.equal(torch.cat([y for _, y in batches]), ref.labels)
    with pytest.raises(ValueError, match="batch_size"):
        next(imagefolder_batches(tmp_path, "val", size=16, batch_size=0))
