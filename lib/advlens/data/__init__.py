"""Data: every loader returns an :class:`ImageSet` of [0, 1] images.

Embedded: :func:`digits` (scikit-learn's handwritten digits) and :func:`twin_cue` (a generated
two-cue set with ground-truth cue masks). :func:`load` dispatches by name.
"""

from advlens.data.digits import digits
from advlens.data.imageset import ImageSet
from advlens.data.twin_cue import twin_cue

__all__ = ["ImageSet", "digits", "twin_cue"]
