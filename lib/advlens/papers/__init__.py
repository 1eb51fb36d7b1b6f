"""Paper-specific analysis and figures, one module per paper (+ one for its figures).

Kernels (``cka``, ``features``, ``inversion``, ``attacks``, ``alignment``, ``transfer``, ...)
never import from here; these modules compose the kernels into each paper's measurements.

- ``jones2022`` / ``jones2022_figures`` — Jones et al. (UAI 2022), notebook 01.
- ``su2018`` / ``su2018_figures`` — Su et al. (ECCV 2018), notebook 02.
- ``linsley2023`` / ``linsley2023_figures`` — Linsley et al. (2023), notebook 03.
- ``liang2021`` / ``liang2021_figures`` — Liang et al. (ICML 2021), notebook 04.
- ``costs`` — ``python -m advlens.papers.costs``, the paper preset's GPU-hours.
"""
