"""Published models behind the zoo's interface: each real checkpoint format written from a tiny
random model and loaded back (outputs compared), safe loading, the paper zoo from a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advlens import compat
from advlens.checkpoints import UntrustedCheckpointError, load_checkpoint
from advlens.features import final_linear, representation
from advlens.zoo import published
from paper_fixtures import (
    write_imagefolder,
    write_paper_zoo,
    write_robustness,
    write_timm,
    write_torchvision,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _normalised(x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_timm_weights_load_back_with_their_normalisation(tmp_path: Path, fmt: str) -> None:
    path, network = write_timm(tmp_path, "test_resnet", fmt=fmt)
    model = published.timm_model("test_resnet", path)
    x = torch.rand(2, 3, 48, 48)
    cfg = network.pretrained_cfg
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(_normalised(x, cfg["mean"], cfg["std"])))
    assert not model.training
    name, head = final_linear(model)
    assert head is model.model.get_classifier() and name == "model.fc"
    with torch.no_grad():  # the penultimate layer: pooled features, the head's input
        pooled = network.forward_head(network.forward_features(
            _normalised(x, cfg["mean"], cfg["std"])), pre_logits=True)
    torch.testing.assert_close(representation(model, x), pooled)


def test_timm_kwargs_reach_create_model(tmp_path: Path) -> None:
    path, network = write_timm(tmp_path, "test_vit", img_size=64)
    model = published.timm_model("test_vit", path, img_size=64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(_normalised(x, (0.5,) * 3, (0.5,) * 3)))


def test_torchvision_state_dict_with_dataparallel_prefix(tmp_path: Path) -> None:
    path, network = write_torchvision(tmp_path, "shufflenet_v2_x0_5")
    model = published.torchvision_model("shufflenet_v2_x0_5", path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(_normalised(x, MEAN, STD)))
    with pytest.raises(ValueError, match="does not fit"):
        published.torchvision_model("mobilenet_v3_small", path)


def test_robustness_checkpoint_uses_its_normaliser_and_skips_the_attacker(tmp_path: Path) -> None:
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)  # not ImageNet's: must come from the file
    path, network = write_robustness(tmp_path, "shufflenet_v2_x0_5", 3.0, num_classes=10,
                                     mean=mean, std=std)
    model = compat.load_robustness_checkpoint("shufflenet_v2_x0_5", path, num_classes=10)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(_normalised(x, mean, std)))
    assert final_linear(model)[0] == "model.fc"
    with pytest.raises(ValueError, match="does not fit"):
        compat.load_robustness_checkpoint("shufflenet_v2_x0_5", path, num_classes=1000)


def test_safe_load_allows_numpy_scalars_and_refuses_other_globals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADVLENS_TRUST_CHECKPOINTS", raising=False)
    ok = tmp_path / "ok.pt"
    torch.save({"model": {"w": torch.ones(2)}, "epoch": np.int64(90), "acc": np.float64(0.5)}, ok)
    loaded = load_checkpoint(ok)
    assert loaded["epoch"] == 90 and torch.equal(loaded["model"]["w"], torch.ones(2))
    # a pickled object (robustness-era checkpoints may carry their argparse Namespace)
    path, network = write_robustness(tmp_path, "shufflenet_v2_x0_5", 1.0, num_classes=10,
                                     extra={"args": argparse.Namespace(arch="x", eps=1.0)})
    with pytest.raises(UntrustedCheckpointError, match=r"argparse\.Namespace.*trust=True"):
        compat.load_robustness_checkpoint("shufflenet_v2_x0_5", path, num_classes=10)
    model = compat.load_robustness_checkpoint("shufflenet_v2_x0_5", path, num_classes=10,
                                              trust=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), network(_normalised(x, MEAN, STD)))
    monkeypatch.setenv("ADVLENS_TRUST_CHECKPOINTS", "1")
    assert load_checkpoint(path)["args"].eps == 1.0
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises((ValueError, UntrustedCheckpointError)):
        load_checkpoint(tmp_path / "junk.pt", trust=False)


def test_paper_zoo_from_manifest_builds_evaluates_and_caches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advlens import data, zoo

    for key, value in write_paper_zoo(tmp_path).items():
        monkeypatch.setenv(key, value)
    configs = zoo.spec("paper")
    assert len(configs) == 6 and {c.source for c in configs} == {"timm", "robustness"}
    built = zoo.build("paper", root=tmp_path / "zoo", progress=False, robust_eval_eps=0.5,
                      robust_eval_n=6)
    images = data.imagefolder(tmp_path / "imagenet", "val", size=64, progress=False)
    eval_set = data.imagefolder(tmp_path / "imagenet", "val", size=64, n=6, seed=0,
                                progress=False)
    for entry in built:
        # clean accuracy recomputed independently on the same six drawn images
        with torch.no_grad():
            correct = entry.model(eval_set.images).argmax(1) == eval_set.labels
        assert entry.meta["test_acc"] == pytest.approx(float(correct.float().mean()))
        assert entry.meta["n_test"] == 6 and entry.meta["robust_eval"]["eps"] == 0.5
        assert 0 <= entry.meta["robust_acc"] <= entry.meta["test_acc"]
        assert representation(entry.model, images.images[:2]).ndim == 2
    again = zoo.build("paper", root=tmp_path / "zoo", progress=False, robust_eval_eps=0.5,
                      robust_eval_n=6)
    assert all(e.cached for e in again)
    assert again.table()["test_acc"].tolist() == built.table()["test_acc"].tolist()
    robust = built.select(source="robustness", eps=3.0)
    assert len(robust) == 2 and all(e.config.regime == "l2-at" for e in robust)


def test_paper_zoo_fails_early_naming_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advlens import data, zoo

    env = write_paper_zoo(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (Path(env["ADVLENS_CHECKPOINTS"]) / "test_convnext.pth").unlink()
    (Path(env["ADVLENS_CHECKPOINTS"]) / "mobilenet_v3_small_l2_eps3.ckpt").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"2 checkpoint.*test_convnext\.pth.*mobilenet_v3_small_l2_eps3"):
        zoo.require("paper")
    assert zoo.require("smoke") == []
    monkeypatch.setenv("ADVLENS_PAPER_ZOO", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="ADVLENS_PAPER_ZOO"):
        zoo.spec("paper")
    monkeypatch.delenv("ADVLENS_IMAGENET")
    with pytest.raises(FileNotFoundError, match=r"ADVLENS_IMAGENET.*image-net\.org"):
        data.require("imagenet", {"root": "$ADVLENS_IMAGENET", "size": 224})
    with pytest.raises(FileNotFoundError, match=r"not found at .*nowhere.*image-net"):
        data.require("imagenet", {"root": str(tmp_path / "nowhere")})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": [{"arch": "x", "source": "timm"}]}))
    monkeypatch.setenv("ADVLENS_PAPER_ZOO", str(bad))
    with pytest.raises(ValueError, match="lacks"):
        zoo.spec("paper")


def test_imagefolder_draws_n_files_reproducibly(tmp_path: Path) -> None:
    from advlens import data

    write_imagefolder(tmp_path, n_classes=3, per_class=4)
    full = data.imagefolder(tmp_path, "val", progress=False)
    a = data.imagefolder(tmp_path, "val", n=5, seed=1, progress=False)
    b = data.imagefolder(tmp_path, "val", n=5, seed=1, progress=False)
    assert len(a) == 5 and torch.equal(a.images, b.images)
    rows = [int(torch.nonzero((full.images == img).flatten(1).all(1))[0]) for img in a.images]
    assert rows == sorted(rows) and torch.equal(full.labels[rows], a.labels)


def test_cifar10_download_goes_through_the_hash_checked_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    from advlens import data
    from advlens.data import cifar
    from advlens.io import sha256_file
    from data_writers import write_cifar

    write_cifar(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(cifar, "URL", archive.as_uri())
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", sha256_file(archive))
    target = tmp_path / "cifar"
    monkeypatch.delenv("ADVLENS_DOWNLOAD", raising=False)
    with pytest.raises(FileNotFoundError, match="ADVLENS_DOWNLOAD=1"):
        data.require("cifar10", {"root": str(target)})
    monkeypatch.setenv("ADVLENS_DOWNLOAD", "1")
    kw = data.require("cifar10", {"root": str(target)})
    assert len(data.cifar10("test", **kw)) == len(data.cifar10("test", root=tmp_path / "src"))
    assert (tmp_path / "cache" / "downloads" / "cifar-10-python.tar.gz").exists()
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", "0" * 64)  # a wrong hash is refused
    (tmp_path / "cache" / "downloads" / "cifar-10-python.tar.gz").unlink()
    with pytest.raises(ValueError, match="sha256"):
        cifar.download_cifar10(tmp_path / "cifar2")
