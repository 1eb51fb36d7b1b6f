"""advlens: a reproducible companion to four papers on adversarial robustness and similarity.

Import modules directly, e.g. ``from advlens import cka``; nothing is re-exported here. Kernels
(tensors in, tensors out) never import ``advlens.papers`` (``tests/test_house.py`` checks it).

Package tree (one concept per module)::

    kernels
      cka.py               linear / RBF CKA, debiased CKA, cka_matrix, cka_cross, MinibatchCKA
      features.py          representations at the penultimate layer or a named module (hooks)
      inversion.py         representation inversion (Jones et al.; Ilyas et al.), draw_pairs
      stir.py              STIR shared invariance (Nanda et al.)
      alignment.py         Spearman alignment, saliency, harmonizer loss (Linsley; Fel et al.)
      transfer.py          transfer matrix (Su et al.); alpha1 / alpha2 (Liang et al.)
      resample.py          images and maps resampled to a model's input side
      probes.py            linear probe / fine-tuning of a source model on a target task
      stats.py             bootstrap CIs, the one bootstrap line fit
      rng.py               seeded: a private seeded RNG (CPU and CUDA), the caller's left as is
      attacks/             every attack returns AttackResult
        core.py              input checks, model mode, gradients, success checks
        criterion.py         misclassified / hit the target
        norms.py             Lp norms, steepest directions, projections, random starts
        scalars.py           fixed numbers as cached 0-dim tensors (per-step arithmetic)
        result.py            AttackResult
        best.py              per-sample best-adversarial bookkeeping
        batching.py          run_batched: an attack over an image set in chunks
        targets.py           target classes: least-likely, top-2, random
        pgd.py               PGD (L∞, L2) and FGSM
        ifgsm.py             (I-)FGSM with Su et al.'s per-image eps search
        search.py            per-image budget searches
        const_search.py      C&W's trade-off-constant search (C&W-L2, EAD)
        cw.py                Carlini & Wagner L2
        ead.py               EAD elastic-net attack
        ddn.py               Decoupled Direction and Norm
        fmn.py               Fast Minimum-Norm (L2, L∞)
        alma.py              ALMA (L2)
        fab.py               Fast Adaptive Boundary (L∞, L2)
        tolerance.py         Linsley et al.'s minimal-eps L2 PGD search
        minimal.py           minimal_l2 / minimal_linf at a pass budget
    models
      zoo/                 the small zoo standing in for the ImageNet models
        architectures.py     six families for digits / twin-cue / CIFAR-10 / STL-10 images
        config.py            ModelConfig and its cache hash (training code + data versions)
        regimes.py           standard, L2 adversarial training, harmonized
        augment.py           training-time augmentation (CIFAR crop and flip)
        training.py          deterministic training of one model
        datasets.py          the images a config trains and is tested on
        evaluation.py        clean and robust accuracy
        cache.py             verified checkpoint cache
        collection.py        ZooEntry, Zoo
        builder.py           load / build a preset (training what is missing)
        specs.py             the models of each preset
        seeds.py             a preset's zoo retrained from other seeds (seed sweeps)
        paper.py             the published checkpoints of the paper preset
        published.py         timm / torchvision / robustness classifiers on [0, 1] images
        report.py            accuracy per family and robustness level
        __main__.py          python -m advlens.zoo
      compat.py            the one module that imports robustness (shims, reference inversion)
      checkpoints.py       reading checkpoint files safely
    data/                  every loader returns an ImageSet of [0, 1] images
      imageset.py          ImageSet
      registry.py          load(name, split, **kw)
      digits.py            scikit-learn digits (embedded)
      twin_cue.py          the twin-cue set (generated, with ground-truth cue masks)
      cues.py              the two cue families, rendered
      cifar.py, stl10.py   CIFAR-10 / STL-10 from their release files
      imagefolder.py       ImageNet-style folders
      clickme.py           ClickMe maps (TFRecord / .npz) without TensorFlow
      tfrecord.py          TFRecord framing;  example.py: tf.train.Example codec;  crc32c.py
      standin.py           ClickMe blur and ground-truth stand-ins for ClickMe maps
      summary.py           class counts, cue agreement, cue decodability
      transforms.py        resizing;  errors.py: missing / corrupt file errors
      arraycache.py        checksummed .npz caches;  cache.py: hash-checked downloads
      sources.py           where each real data set comes from; early path checks
    papers/                analysis and figures, one pair of modules per paper
      jones2022.py, jones2022_figures.py       Jones et al. (UAI 2022), notebook 01
      su2018.py, su2018_figures.py             Su et al. (ECCV 2018), notebook 02
      linsley2023.py, linsley2023_figures.py   Linsley et al. (2023), notebook 03
      liang2021.py, liang2021_figures.py       Liang et al. (ICML 2021), notebook 04
      costs.py             the paper preset's GPU-hour table, notebooks 00-04 (CLI)
    running
      presets.py           the knobs of every notebook at smoke / laptop / paper scale
      runner.py            papermill batch runs and the CLI (python -m advlens, __main__.py)
      verify.py            a run's tables against the committed reference
      findings.py          findings tables rendered as Markdown (README, notebooks)
      sweep.py, sweep_figures.py   seed sweeps and their figures
      book.py              the rendered HTML book
      parallel.py          Dask map with retries
      accel.py             GPU fast paths (autocast, channels-last, compile, batch size)
      cost.py              GPU-hour estimates of the paper preset
      plots.py             figure style; save_figure (PNG, PDF, CSV, provenance)
      provenance.py        parameters, versions, commit, seed, wall time of a result
      io.py                atomic writes and content hashes
      paths.py             repository, data, zoo and figure folders
      checks.py            shared input validation with clear errors
"""

import warnings as _warnings

# Progress bars: without ipywidgets, tqdm.auto warns "IProgress not found" in every notebook and
# falls back to console bars. Console bars are what advlens uses in notebooks (ipywidgets is not
# a dependency), so import tqdm.auto once with that warning silenced; with ipywidgets installed,
# tqdm.auto keeps choosing notebook widgets as usual.
with _warnings.catch_warnings():
    _warnings.filterwarnings("ignore", message="IProgress not found")
    import tqdm.auto as _tqdm_auto  # noqa: F401

__version__ = "0.1.0"
