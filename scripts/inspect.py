"""Inspects a finished run: ``python scripts/inspect.py --workdir DIR [--compare OTHER]``.

Writes gate heat maps, attributions, gradient flow and attention maps as PNG files to
``DIR/plots/inspect/`` (:mod:`seqjax.train.inspection`).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_PATH = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

if __name__ != "__main__":
    # This file shares its name with the standard library's `inspect`, and a script run
    # from this folder (scripts/train.py) has the folder first on its import path: when
    # imported as `inspect`, become the standard library's module.
    import importlib.machinery
    import importlib.util

    _spec = importlib.machinery.PathFinder.find_spec(__name__, _PATH)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _module
    _spec.loader.exec_module(_module)
else:
    sys.path[:] = [os.path.dirname(_HERE), *_PATH]
    from seqjax.train.inspection import main

    main()
