"""lrltool: adapt small multilingual language models to low-resource languages, and measure it."""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from typing import Any

__version__ = "0.1.0"


class _TransformersWithoutSklearn(MetaPathFinder):
    """Tells transformers that scikit-learn and scipy are not there, as soon as
    ``transformers.utils.import_utils`` is loaded.

    With scikit-learn installed (lrltool's metrics use it, and it needs scipy), importing any transformers
    model imports ``sklearn.metrics`` and scipy with it, only for assisted generation's confidence
    threshold, and ``scipy.optimize``, only for the object-detection losses. lrltool runs neither
    (transformers skips the first without scikit-learn and imports the second only where scipy is). On the
    project's machine that was 3 s and then 1 s of the 10-13 s that every training and evaluation command
    spent importing (docs/design.md "Layout"). lrltool's own code imports scikit-learn itself, where it
    needs it.
    """

    target = "transformers.utils.import_utils"

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != self.target:
            return None
        spec = PathFinder.find_spec(name, path, target)  # where transformers is installed
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None
        load = spec.loader.exec_module  # type: ignore[union-attr]

        def exec_module(module: Any) -> None:
            load(module)
            module._sklearn_available = False
            module._scipy_available = False

        spec.loader.exec_module = exec_module  # type: ignore[union-attr]
        return spec


if "transformers.utils.import_utils" not in sys.modules:
    sys.meta_path.insert(0, _TransformersWithoutSklearn())
