"""advlens: a reproducible companion to four papers on adversarial robustness and similarity.

Modules (one concept each): ``data``, ``zoo``, ``features``, ``cka``, ``inversion``,
``attacks``, ``plots``, ``runner``. Import them directly, e.g. ``from advlens import cka``.
"""

__version__ = "0.1.0"
