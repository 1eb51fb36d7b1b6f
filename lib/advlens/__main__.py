"""``python -m advlens run|verify|readme|book ...`` — see :mod:`advlens.runner`."""

from advlens.runner import main

raise SystemExit(main())
