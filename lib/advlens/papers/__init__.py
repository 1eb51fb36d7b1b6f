"""Paper-specific analysis and figures, one module per paper (+ one for its figures).

Kernels (``cka``, ``features``, ``inversion``, ``attacks``, ``alignment``, ``transfer``, ...)
never import from here; these modules compose the kernels into each paper's measurements.

- ``jones2022`` / ``jones2022_figures`` — Jones et al. (UAI 2022), notebook 01.
- ``su2018`` / ``su2018_figures`` — Su et al. (ECCV 2018), notebook 02.
"""
