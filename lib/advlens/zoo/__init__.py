"""The model zoo: small models of six families trained on the embedded data, standing in for
ImageNet models (the ``paper`` preset names the real checkpoints).

- :class:`ModelConfig` — everything that determines a model; its ``hash`` keys the cache.
- :func:`spec` — the configs of a preset; :func:`build` — load or train them all into a
  :class:`Zoo`; :func:`load` — one model as a :class:`ZooEntry`.
- :mod:`~advlens.zoo.architectures` (families, ``ZooNet`` = normalize → body → linear head),
  :mod:`~advlens.zoo.regimes` (standard, L2 adversarial training, the neural harmonizer),
  :mod:`~advlens.zoo.training`, :mod:`~advlens.zoo.evaluation`, :mod:`~advlens.zoo.cache`.
"""

from advlens.zoo.architectures import ARCHS, FAMILIES, ZooNet, build_model
from advlens.zoo.builder import build, load, require
from advlens.zoo.cache import CacheWarning
from advlens.zoo.collection import Zoo, ZooEntry
from advlens.zoo.config import TRAINING_CODE_VERSION, ModelConfig
from advlens.zoo.specs import spec

__all__ = ["ARCHS", "FAMILIES", "TRAINING_CODE_VERSION", "CacheWarning", "ModelConfig", "Zoo",
           "ZooEntry", "ZooNet", "build", "build_model", "load", "require", "spec"]
