"""TFRecord framing, CRC-32C, tf.train.Example decoding and the ClickMe readers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from advlens.data import clickme, load
from advlens.data.crc32c import crc32c, crc32c_reference, masked_crc32c
from advlens.data.example import encode_example, parse_example
from advlens.data.tfrecord import read_records, write_records
from data_writers import crc32c_bitwise, example_bytes, frame, jpeg_bytes, write_tfrecord

# --- CRC-32C ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"123456789", 0xE3069283),  # the standard check value
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
    (b"\xff" * 32, 0x62A8AB43),  # RFC 3720 B.4: 32 bytes of ones
    (bytes(range(32)), 0x46DD794E),  # RFC 3720 B.4: incrementing
])
def test_crc32c_known_vectors(data, expected):
    assert crc32c(data) == expected
    assert crc32c_reference(data) == expected


@pytest.mark.parametrize("n", [4095, 4096, 5001, 65536 + 13])
def test_fast_crc32c_matches_bitwise_definition(n):
    data = os.urandom(n)
    assert crc32c(data) == crc32c_bitwise(data)


def test_masked_crc_matches_framing_spec():
    data = b"some record"
    crc = crc32c_bitwise(data)
    assert masked_crc32c(data) == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- TFRecord framing ---------------------------------------------------------------------------

def test_read_records_of_an_independently_framed_file(tmp_path):
    payloads = [b"", b"a", os.urandom(5000)]
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    assert list(read_records(path)) == payloads
    out = write_records(tmp_path / "y.tfrecord", payloads)
    assert out.read_bytes() == path.read_bytes()


def test_corrupt_and_truncated_records_name_the_file(tmp_path):
    path = tmp_path / "bad.tfrecord"
    good = frame(b"hello world")
    flipped = bytearray(good)
    flipped[12 + 3] ^= 1  # a data bit (the payload starts after the 12-byte header)
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="bad.tfrecord.*CRC"):
        list(read_records(path))
    assert list(read_records(path, verify=False)) == [b"hel" + bytes([ord("l") ^ 1]) + b"o world"]
    path.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated"):
        list(read_records(path))
    path.write_bytes(bytes([good[0] ^ 4]) + good[1:])
    with pytest.raises(ValueError, match="length"):
        list(read_records(path))


# --- tf.train.Example ---------------------------------------------------------------------------

def test_parse_hand_encoded_example():
    for packed in (True, False):
        parsed = parse_example(example_bytes(b"IMG", b"HM", 917, packed_label=packed))
        assert parsed["image"] == [b"IMG"] and parsed["heatmap"] == [b"HM"]
        assert parsed["label"].tolist() == [917]


def test_example_round_trip_and_types():
    features = {"b": [b"x", b"yz"], "i": np.array([-1, 0, 2**40], np.int64),
                "f": np.array([0.5, -2.25], np.float32), "s": "text"}
    parsed = parse_example(encode_example(features))
    assert parsed["b"] == [b"x", b"yz"] and parsed["s"] == [b"text"]
    assert parsed["i"].tolist() == [-1, 0, 2**40]
    assert parsed["f"].tolist() == [0.5, -2.25]


# --- ClickMe ------------------------------------------------------------------------------------

def _smooth_image(seed: int, side: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    a, b, c = rng.uniform(40, 200, 3)
    img = np.stack([a + 50 * xx, b + 50 * yy, c + 30 * xx * yy], axis=-1)
    return img.clip(0, 255).astype(np.uint8)


def _blob(cy: int, cx: int, side: int = 256) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return (255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 12.0**2))).astype(np.uint8)


def test_clickme_harmonization_format(tmp_path):
    centres = [(64, 192), (200, 40)]
    examples = [example_bytes(jpeg_bytes(_smooth_image(i)), jpeg_bytes(_blob(*c)), 10 * i + 3)
                for i, c in enumerate(centres)]
    write_tfrecord(tmp_path / "val" / "val-0.tfrecords", examples[:1])
    write_tfrecord(tmp_path / "val" / "val-1.tfrecords", examples[1:])
    s = clickme(tmp_path, "val", progress=False)
    assert s.images.shape == (2, 3, 224, 224) and s.masks.shape == (2, 1, 224, 224)
    assert s.labels.tolist() == [3, 13] and len(s.classes) == 1000
    for i, (cy, cx) in enumerate(centres):
        # images: the smooth original, resized (JPEG error only)
        ref = torch.from_numpy(_smooth_image(i)).permute(2, 0, 1)[None].float() / 255
        ref = torch.nn.functional.interpolate(ref, size=(224, 224), mode="bilinear",
                                              antialias=True)[0]
        assert (s.images[i] - ref).abs().mean() < 0.02
        # maps: peak 1, near the blob (rescaled 256 -> 224), blurred wider than the blob
        heat = s.masks[i, 0]
        assert float(heat.max()) == pytest.approx(1.0)
        py, px = divmod(int(heat.argmax()), 224)
        assert abs(py - cy * 224 / 256) < 10 and abs(px - cx * 224 / 256) < 10
        assert (heat > 0.5).float().sum() > 2 * (_blob(cy, cx) > 127).sum() * (224 / 256) ** 2


def test_clickme_raw_format_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (224, 224, 3)).astype(np.float32)
    heat = rng.uniform(0, 3, (224, 224, 1)).astype(np.float32)
    path = tmp_path / "clickme_raw.tfrecords"
    write_tfrecord(path, [example_bytes(image.astype("<f4").tobytes(),
                                        heat.astype("<f4").tobytes(), 999)])
    s = load("clickme", "val", path=path, progress=False)
    np.testing.assert_allclose(s.images[0].permute(1, 2, 0).numpy(), image / 255, rtol=1e-6)
    np.testing.assert_allclose(s.masks[0, 0].numpy(), heat[..., 0] / heat.max(), rtol=1e-6)
    assert s.labels.tolist() == [999]
    small = clickme(path, size=32, progress=False)
    assert small.images.shape == (1, 3, 32, 32)


def test_clickme_raw_image_stored_in_unit_range_is_read_as_such(tmp_path):
    """A raw record whose image is in [0, 1] (not Adversarial-Alignment's 0–255) was divided
    by 255 too and loaded almost black (max 0.0039) without a word; it is read as [0, 1], as
    .npz images are (up to UNIT_MAX), and normalised model inputs are refused."""
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (224, 224, 3)).astype("<f4")
    heat = rng.uniform(0, 1, (224, 224, 1)).astype("<f4").tobytes()
    path = tmp_path / "clickme_raw.tfrecords"
    write_tfrecord(path, [example_bytes(image.tobytes(), heat, 7)])
    s = load("clickme", "val", path=path, progress=False)
    np.testing.assert_allclose(s.images[0].permute(1, 2, 0).numpy(), image, rtol=1e-6)
    write_tfrecord(path, [example_bytes(((image - 0.45) / 0.22).astype("<f4").tobytes(),
                                        heat, 7)])
    with pytest.raises(ValueError, match="raw image holds values down to .* before normalisation"):
        load("clickme", "val", path=path, progress=False)


def test_clickme_npz_files(tmp_path):
    rng = np.random.default_rng(1)
    images = []
    for i in range(3):
        img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        heat = np.zeros((224, 224), np.float32)
        heat[50 + i, 60] = 2.0
        np.savez(tmp_path / f"{i:03d}.npz", image=img, heatmap=heat, label=np.int64(i))
        images.append(img)
    s = clickme(tmp_path, n=2, progress=False)
    assert len(s) == 2 and s.labels.tolist() == [0, 1]
    np.testing.assert_allclose(s.images[1].permute(1, 2, 0).numpy(), images[1] / 255, atol=1e-6)
    assert float(s.masks[1, 0, 51, 60]) == 1.0 and float(s.masks[1].sum()) == 1.0
    blurred = clickme(tmp_path, n=1, blur=True, progress=False)
    assert (blurred.masks[0] > 0).sum() > 100


def test_clickme_map_with_negative_values_keeps_its_ranks(tmp_path):
    """A raw map partly below 0 (user maps; Harmonization's JPEG maps never are): the loaded
    mask must order the pixels as the map does (Spearman 1 with it, scipy as the reference,
    as the official raw path's min-max), in [0, 1]. Clipping at 0 tied the negative 40 %
    (Spearman 0.85 with the map here); a non-negative map is still scaled to peak 1."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    heat = rng.standard_normal((32, 32)).astype(np.float32) + 0.25  # about 40 % negative
    np.savez(tmp_path / "000.npz", image=img, heatmap=heat, label=np.int64(3))
    mask = clickme(tmp_path, size=32, progress=False).masks[0, 0].numpy()
    assert mask.min() == 0.0 and mask.max() == 1.0
    assert spearmanr(mask.ravel(), heat.ravel()).statistic == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(mask, (heat - heat.min()) / (heat.max() - heat.min()), atol=1e-6)
    np.savez(tmp_path / "000.npz", image=img, heatmap=np.abs(heat), label=np.int64(3))
    mask = clickme(tmp_path, size=32, progress=False).masks[0, 0].numpy()
    np.testing.assert_allclose(mask, np.abs(heat) / np.abs(heat).max(), atol=1e-6)


def test_clickme_npz_reads_a_float_image_overshooting_1_as_0_1_and_refuses_16_bit(tmp_path):
    """A [0, 1] image resized bicubically overshoots 1 at a sharp edge (1.07 here); read as a
    0–255 image it was divided by 255 (black). uint16 pixels were divided by 255 (white), and
    mean/std normalised ones clipped at 0."""
    import torchvision.transforms.functional as tvf

    small = torch.zeros(3, 16, 16)
    small[:, :, 8:] = 1.0
    small[1] *= 0.5
    img = tvf.resize(small, [32, 32], interpolation=tvf.InterpolationMode.BICUBIC,
                     antialias=True)
    assert float(img.max()) > 1.0
    heat = np.ones((32, 32), np.float32)
    np.savez(tmp_path / "a.npz", image=img.numpy(), heatmap=heat, label=1)
    s = clickme(tmp_path / "a.npz", size=32, progress=False)
    torch.testing.assert_close(s.images[0], img.clamp(0, 1), atol=1e-6, rtol=0)
    np.savez(tmp_path / "b.npz", image=np.full((32, 32, 3), 40000, np.uint16), heatmap=heat,
             label=1)
    with pytest.raises(ValueError, match=r"b\.npz .*integers up to 40000"):
        clickme(tmp_path / "b.npz", size=32, progress=False)
    normalised = (img - 0.45) / 0.225
    np.savez(tmp_path / "c.npz", image=normalised.numpy(), heatmap=heat, label=1)
    with pytest.raises(ValueError, match=r"c\.npz .*before normalisation"):
        clickme(tmp_path / "c.npz", size=32, progress=False)


def test_max_per_class_keeps_the_first_image_of_each_class(tmp_path):
    """Linsley et al.'s ClickMe subset holds one image per class; shards hold many images of
    a class (here class by class), so the first n records alone covered 2 classes, not 4."""
    written = []  # (file, label) in the order the folder is read
    for k in range(4):
        for j in range(3):
            heat = np.zeros((8, 8), np.float32)
            heat[j, k] = 1.0
            name = f"{k:02d}_{j}.npz"
            np.savez(tmp_path / name, image=np.full((8, 8, 3), 10 * k + j, np.uint8),
                     heatmap=heat, label=np.int64(k))
            written.append((name, k))
    assert clickme(tmp_path, n=4, size=8, progress=False).labels.tolist() == [0, 0, 0, 1]
    s = clickme(tmp_path, n=4, size=8, max_per_class=1, progress=False)
    firsts = [next(i for i, (_, k) in enumerate(written) if k == c) for c in range(4)]
    assert s.labels.tolist() == [written[i][1] for i in firsts] == [0, 1, 2, 3]
    assert s.images[:, 0, 0, 0].mul(255).round().tolist() == [0.0, 10.0, 20.0, 30.0]
    two = clickme(tmp_path, size=8, max_per_class=2, progress=False)
    assert two.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="max_per_class"):
        clickme(tmp_path, size=8, max_per_class=0, progress=False)


def test_clickme_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        clickme(tmp_path / "nowhere", progress=False)
    path = tmp_path / "bad.tfrecords"
    path.write_bytes(frame(example_bytes(b"neither jpeg nor raw", b"", 1)))
    with pytest.raises(ValueError, match="bad.tfrecords"):
        clickme(path, progress=False)
    path.write_bytes(frame(example_bytes(b"\xff\xd8 broken jpeg", b"\xff\xd8", 1)))
    with pytest.raises(ValueError, match="JPEG"):
        clickme(path, progress=False)
    good = frame(example_bytes(b"x", b"y", 1))
    path.write_bytes(good[:20] + bytes([good[20] ^ 8]) + good[21:])
    with pytest.raises(ValueError, match="bad.tfrecords.*CRC"):
        clickme(path, progress=False)
    npz = tmp_path / "npz" / "0.npz"
    npz.parent.mkdir()
    npz.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="0.npz"):
        clickme(npz.parent, progress=False)


def test_raw_record_whose_first_bytes_look_like_jpeg(tmp_path):
    image = np.full((224, 224, 3), 100.0, "<f4")
    raw = bytearray(image.tobytes())
    raw[0:2] = b"\xff\xd8"  # pixel 0 becomes 100.42...: still a valid raw float32 image
    heat = np.ones((224, 224, 1), "<f4").tobytes()
    path = tmp_path / "raw.tfrecord"
    write_tfrecord(path, [example_bytes(bytes(raw), heat, 3)])
    loaded = clickme(path)
    assert len(loaded) == 1 and int(loaded.labels[0]) == 3


def test_leftover_temporary_files_are_not_read_as_shards(tmp_path):
    image = np.full((224, 224, 3), 50.0, "<f4").tobytes()
    heat = np.ones((224, 224, 1), "<f4").tobytes()
    write_tfrecord(tmp_path / "val-0.tfrecords", [example_bytes(image, heat, 1)])
    (tmp_path / ".val-0.tfrecords.k2j3.tmp").write_bytes(
        (tmp_path / "val-0.tfrecords").read_bytes())
    assert len(clickme(tmp_path)) == 1


def _raw_shard(path, label):
    image = np.full((224, 224, 3), 50.0, "<f4").tobytes()
    heat = np.ones((224, 224, 1), "<f4").tobytes()
    write_tfrecord(path, [example_bytes(image, heat, label)])


def test_shards_are_read_in_the_order_of_their_numbers(tmp_path):
    for i in range(12):  # alphabetically val-10 and val-11 would come before val-2
        _raw_shard(tmp_path / f"val-{i}.tfrecords", i)
    assert clickme(tmp_path, size=8, progress=False).labels.tolist() == list(range(12))


def test_harmonizations_keras_cache_is_read(tmp_path):
    # tf.keras.utils.get_file(f"clickme_val_{i}", ..., cache_subdir="datasets/click-me")
    cache = tmp_path / ".keras" / "datasets" / "click-me"
    cache.mkdir(parents=True)
    for i in range(12):
        _raw_shard(cache / f"clickme_val_{i}", i)
    assert clickme(cache, size=8, progress=False).labels.tolist() == list(range(12))
    # Harmonization's load_clickme_train() caches its shards beside them: never mixed in
    for i in range(3):
        _raw_shard(cache / f"clickme_train_{i}", 100 + i)
    with pytest.raises(ValueError, match="both the val and the train.*split='val'"):
        clickme(cache, size=8, progress=False)
    assert clickme(cache, "val", size=8, progress=False).labels.tolist() == list(range(12))
    assert clickme(cache, "train", size=8, progress=False).labels.tolist() == [100, 101, 102]
    (cache / "clickme_val_notes.txt").write_text("not a shard")  # not a numbered shard
    assert len(clickme(cache, "val", size=8, progress=False)) == 12


def test_shards_named_for_another_split_are_never_read_in_its_place(tmp_path):
    # the bucket's names (CLICKME_BASE_URL/val/val-{i}.tfrecords, train/train-{i}.tfrecords)
    # in one folder: 'train' sorts before 'val', so the first images were train images
    for name, label in (("val-0.tfrecords", 1), ("val-1.tfrecords", 2), ("train-0.tfrecords", 77)):
        _raw_shard(tmp_path / name, label)
    with pytest.raises(ValueError, match="both the val and the train.*split='val'"):
        clickme(tmp_path, size=8, progress=False)
    assert clickme(tmp_path, "val", size=8, progress=False).labels.tolist() == [1, 2]
    assert clickme(tmp_path, "train", size=8, progress=False).labels.tolist() == [77]
    # a Keras cache holding only the val shards (load_clickme_val()) is no train split
    cache = tmp_path / "click-me"
    cache.mkdir()
    for i in range(2):
        _raw_shard(cache / f"clickme_val_{i}", 900 + i)
    with pytest.raises(ValueError, match="split 'val', none of split 'train'"):
        clickme(cache, "train", size=8, progress=False)
    assert clickme(cache, "val", size=8, progress=False).labels.tolist() == [900, 901]
    assert clickme(cache, size=8, progress=False).labels.tolist() == [900, 901]


def test_labels_that_are_no_class_index_are_refused_not_truncated(tmp_path):
    # their first element was read: a one-hot label (what Harmonization's loader yields, so what
    # an .npz export of it holds) became class 0, a two-valued record label its first value
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    heat = np.random.default_rng(1).random((8, 8)).astype(np.float32)
    one_hot = np.zeros(1000, np.float32)
    one_hot[417] = 1.0
    np.savez(tmp_path / "0.npz", image=img, heatmap=heat, label=one_hot)
    assert clickme(tmp_path, size=8, progress=False).labels.tolist() == [417]
    for bad in (np.int64(1000), np.int64(-1), np.float64(3.7), np.array([3, 4]),
                one_hot * 0.5):
        np.savez(tmp_path / "0.npz", image=img, heatmap=heat, label=bad)
        with pytest.raises(ValueError, match=r"0\.npz .*label must be one class index"):
            clickme(tmp_path, size=8, progress=False)
    image = np.full((224, 224, 3), 50.0, "<f4").tobytes()
    raw_heat = np.ones((224, 224, 1), "<f4").tobytes()
    record = tmp_path / "r" / "val-0.tfrecords"
    for bad in (np.array([5, 7]), np.array([1000]), [b"5"]):
        write_records(record, [encode_example({"image": image, "heatmap": raw_heat,
                                                "label": bad})])
        with pytest.raises(ValueError, match=r"val-0\.tfrecords.*record 0\): label must be one"):
            clickme(record, size=8, progress=False)


def test_missing_shards_name_the_keras_cache(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"~/\.keras/datasets"):
        clickme(tmp_path / "empty", progress=False)


def test_the_buckets_split_folders_are_named_not_called_missing(tmp_path):
    # a mirror of CLICKME_BASE_URL keeps click-me/val/val-<i>.tfrecords and
    # click-me/train/train-<i>.tfrecords; path= click-me (the paper preset's $ADVLENS_CLICKME)
    # without split said "not found ... download", the data one level down
    root = tmp_path / "click-me"
    _raw_shard(root / "val" / "val-0.tfrecords", 1)
    _raw_shard(root / "train" / "train-0.tfrecords", 77)
    with pytest.raises(ValueError, match=r"split folder\(s\) val/ and train/.*split='val'"):
        clickme(root, size=8, progress=False)
    assert clickme(root, "val", size=8, progress=False).labels.tolist() == [1]
    assert clickme(root / "val", size=8, progress=False).labels.tolist() == [1]


def _tf_bilinear(image: np.ndarray, out: int) -> np.ndarray:
    """tf.image.resize(method="bilinear") transcribed (half-pixel centres, no antialiasing):
    source coordinate (o + 0.5)·in/out − 0.5, neighbours clamped to the image, float64."""
    def weights(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(out) + 0.5) * (n_in / out) - 0.5
        low = np.floor(src)
        frac = src - low
        return (np.clip(low, 0, n_in - 1).astype(int),
                np.clip(np.ceil(src), 0, n_in - 1).astype(int), frac)

    (r0, r1, fr), (c0, c1, fc) = weights(image.shape[0]), weights(image.shape[1])
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr)[:, None] + bottom * fr[:, None]


@pytest.mark.parametrize(("side", "size"), [(64, 224), (256, 224), (17, 40), (224, 64)])
def test_resize_is_tensorflows_half_pixel_bilinear(side, size):
    """The heatmap upsample (64 → 224) and the image resize (256 → 224) against a transcription of
    TensorFlow's resize: the recorded TensorFlow fixture is at 64, where the resize is skipped."""
    from advlens.data.clickme import _resize

    image = np.random.default_rng(side).uniform(0, 255, (side, side))
    got = _resize(torch.from_numpy(image)[None, None], size)[0, 0].numpy()
    np.testing.assert_allclose(got, _tf_bilinear(image, size), rtol=0, atol=1e-9)
