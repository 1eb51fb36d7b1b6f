"""``python -m advlens run ...`` — see :mod:`advlens.runner`."""

from advlens.runner import main

raise SystemExit(main())
