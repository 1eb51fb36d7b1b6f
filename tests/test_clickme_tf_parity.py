"""The ClickMe reader gives what the official Harmonization pipeline (TensorFlow) gives.

Always: against TensorFlow's outputs recorded in ``fixtures/clickme_tf_reference.npz`` (made by
``fixtures/make_clickme_tf_reference.py`` with TensorFlow 2.21: default ``decode_jpeg``, i.e. the
fast integer IDCT, bilinear ``tf.image.resize``, the ClickMe blur). With TensorFlow importable
(e.g. installed into ``.peers``): the live pipeline on records of both formats written by
``data_writers``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from advlens.data import clickme
from data_writers import example_bytes, jpeg_bytes, write_tfrecord

FIXTURE = Path(__file__).parent / "fixtures" / "clickme_tf_reference.npz"
PEERS = Path(__file__).resolve().parents[1] / ".peers"


def _records(ref: np.lib.npyio.NpzFile) -> list[bytes]:
    return [example_bytes(ref[f"image_jpeg_{i}"].tobytes(), ref[f"heat_jpeg_{i}"].tobytes(), i)
            for i in range(2)]


def test_reader_matches_recorded_tensorflow_pipeline(tmp_path: Path) -> None:
    ref = np.load(FIXTURE)
    size = int(ref["size"])
    write_tfrecord(tmp_path / "val-0.tfrecords", _records(ref))
    data = clickme(tmp_path, size=size, progress=False)
    for i in range(2):
        image = data.images[i].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(image, ref[f"tf_image_{i}"] / 255.0, rtol=0, atol=1e-5)
        heat = ref[f"tf_heat_{i}"][..., 0]
        np.testing.assert_allclose(data.masks[i, 0].numpy(), heat / heat.max(), rtol=0,
                                   atol=1e-5)


def test_pillows_accurate_idct_would_not_match() -> None:
    """Why the reader does not decode with Pillow: its accurate IDCT moves pixels by levels."""
    from PIL import Image

    from advlens.data.clickme import _jpeg

    ref = np.load(FIXTURE)
    data = ref["image_jpeg_0"].tobytes()
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
    assert np.abs(pillow - _jpeg(data, 3, "fixture")).max() >= 1.0


def _tensorflow():
    if PEERS.is_dir() and str(PEERS) not in sys.path:
        sys.path.append(str(PEERS))
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed (optional "
                                                    "peer for the live parity check)")


def test_reader_matches_live_tensorflow_on_both_formats(tmp_path: Path) -> None:
    tf = _tensorflow()
    sys.path.insert(0, str(FIXTURE.parent))
    try:
        from make_clickme_tf_reference import _sources, official
    finally:
        sys.path.remove(str(FIXTURE.parent))
    image, heat = _sources(5)
    image_jpeg, heat_jpeg = jpeg_bytes(image, quality=90), jpeg_bytes(heat, quality=90)
    tf_image, tf_heat = official(image_jpeg, heat_jpeg, 224)
    # the raw format as TensorFlow writes and reads it: float32 bytes, no resize, no blur
    raw_image = np.random.default_rng(0).uniform(0, 255, (224, 224, 3)).astype(np.float32)
    raw_heat = tf_heat.astype(np.float32)
    tf_raw = tf.reshape(tf.io.decode_raw(raw_image.tobytes(), tf.float32), (224, 224, 3)).numpy()
    write_tfrecord(tmp_path / "a.tfrecords", [example_bytes(image_jpeg, heat_jpeg, 1)])
    write_tfrecord(tmp_path / "b.tfrecords", [example_bytes(raw_image.tobytes(),
                                                            raw_heat.tobytes(), 2)])
    data = clickme(tmp_path, progress=False)
    np.testing.assert_allclose(data.images[0].permute(1, 2, 0).numpy(), tf_image / 255.0,
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(data.masks[0, 0].numpy(), tf_heat[..., 0] / tf_heat.max(),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(data.images[1].permute(1, 2, 0).numpy(), tf_raw / 255.0,
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(data.masks[1, 0].numpy(), raw_heat[..., 0] / raw_heat.max(),
                               rtol=0, atol=1e-6)
