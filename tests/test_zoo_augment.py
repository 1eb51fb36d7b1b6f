"""Training-time augmentation (``ModelConfig.augment``) against torchvision's transforms."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from advlens.zoo import ModelConfig
from advlens.zoo.augment import augment, random_crop_flip
from advlens.zoo.datasets import dataset_for
from advlens.zoo.training import train


def _candidates(padding: int = 4) -> list[tuple[int, int, bool]]:
    """Every (top, left, flip) of torchvision's pad → crop → hflip: the reference outcomes,
    independent of the order of our random draws."""
    return [(top, left, flip)
            for top in range(2 * padding + 1) for left in range(2 * padding + 1)
            for flip in (False, True)]


def test_random_crop_flip_is_a_torchvision_crop_and_flip_of_each_image() -> None:
    """Each output equals exactly one of torchvision's 9·9·2 RandomCrop(padding=4) +
    RandomHorizontalFlip outcomes of its own image (zero padding in pixel space)."""
    x = torch.rand(64, 3, 10, 12)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for image, crop in zip(x, out, strict=True):
        padded = TF.pad(image, [4])
        hits = [(t, left, f) for t, left, f in _candidates()
                if torch.equal(crop, (TF.hflip if f else lambda v: v)(
                    TF.crop(padded, t, left, 10, 12)))]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) > 40  # offsets and flips vary from image to image


def test_random_crop_flip_draws_uniform_offsets_and_fair_flips() -> None:
    """Over 18,000 copies of a 16×16 image of distinct values, each of the 9 vertical and 9
    horizontal offsets is drawn ~1/9 of the time and ~half the crops are mirrored (read off
    where two neighbouring pixels of the centre land)."""
    n, side = 18_000, 16
    x = torch.arange(1, side * side + 1, dtype=torch.float32).view(1, 1, side, side)
    out = random_crop_flip(x.expand(n, 1, side, side), torch.Generator().manual_seed(1))
    flat = out.flatten(1)
    centre = 8 * side + 8 + 1  # the value of source pixel (8, 8); (8, 9) holds centre + 1
    at, right = (flat == centre).int().argmax(1), (flat == centre + 1).int().argmax(1)
    row, col = at // side, at % side
    flip = right % side < col  # the right neighbour landed on the left
    top = 12 - row  # source row 8 sits at padded row 12
    left = torch.where(flip, col - 3, 12 - col)  # mirrored: column 15 − (12 − left)
    for drawn in (top, left):
        counts = torch.bincount(drawn, minlength=9).float()
        assert counts.numel() == 9 and (counts / (n / 9) - 1).abs().max() < 0.1
    assert abs(float(flip.float().mean()) - 0.5) < 0.02


def test_augment_none_is_the_identity_and_unknown_kinds_are_refused() -> None:
    x = torch.rand(2, 1, 4, 4)
    assert augment(x, "none", torch.Generator()) is x
    with pytest.raises(ValueError, match="augment must be one of"):
        augment(x, "mixup", torch.Generator())


def test_config_refuses_augmenting_images_whose_masks_would_not_follow() -> None:
    with pytest.raises(ValueError, match="augment must be one of"):
        ModelConfig("cnn-xs", augment="flip")
    with pytest.raises(ValueError, match="masks or importance maps"):
        ModelConfig("cnn-xs", dataset="twin-cue", variant="both", augment="crop-flip")
    with pytest.raises(ValueError, match="masks or importance maps"):
        ModelConfig("cnn-xs", regime="harmonized", harmonizer_weight=1.0,
                    importance_map="stroke", augment="crop-flip")


def test_augmented_training_is_deterministic_keeps_old_keys_and_differs_from_plain() -> None:
    tiny = ModelConfig("cnn-xs", epochs=1, n_train=96, n_test=32, batch_size=32)
    aug = tiny.replace(augment="crop-flip")
    assert tiny.replace(augment="none").hash == tiny.hash != aug.hash

    def state(config: ModelConfig) -> dict[str, torch.Tensor]:
        return train(config, dataset_for(config, "train"), progress=False).model.state_dict()

    a, b, plain = state(aug), state(aug), state(tiny)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], plain["head.weight"])
