"""Data: every loader returns an :class:`ImageSet` of unnormalised [0, 1] images.

Embedded: :func:`digits` (scikit-learn's handwritten digits) and :func:`twin_cue` (a generated
two-cue set with ground-truth cue masks). Real: :func:`cifar10`, :func:`stl10`,
:func:`imagefolder` (:func:`imagefolder_batches`: the same a batch at a time) and
:func:`clickme` (TFRecord and ``.npz``, no TensorFlow).
:func:`clickme_standin` builds ground-truth stand-ins for ClickMe maps from cue masks.
:func:`load` dispatches by name; :func:`require` checks a real data set's folder (from its
``$ADVLENS_*`` variable) before anything runs; :func:`advlens.data.cache.fetch` is the
hash-checked download cache.
"""

from advlens.data.cifar import cifar10
from advlens.data.clickme import clickme
from advlens.data.digits import digits
from advlens.data.imagefolder import imagefolder, imagefolder_batches
from advlens.data.imageset import ImageSet, select_classes
from advlens.data.registry import LOADERS, load
from advlens.data.sources import require
from advlens.data.standin import clickme_blur, clickme_standin
from advlens.data.stl10 import stl10
from advlens.data.summary import class_counts, cue_agreement, cue_decodability
from advlens.data.twin_cue import twin_cue

__all__ = ["LOADERS", "ImageSet", "cifar10", "class_counts", "clickme", "clickme_blur",
           "clickme_standin", "cue_agreement", "cue_decodability", "digits", "imagefolder",
           "imagefolder_batches", "load", "require", "select_classes", "stl10", "twin_cue"]
