"""atdata's module path ``atdata.lens``: the names of :mod:`atdata_lite.lenses`.

``from atdata_lite.lens import Lens, LensNetwork, lens`` works as it does with atdata. The
package attribute ``atdata_lite.lens`` is the ``@lens`` decorator, not this module (as
``atdata.lens`` is), even after this module has been imported.
"""

from __future__ import annotations

from .lenses import Lens, LensGetter, LensNetwork, LensPutter, lens

__all__ = ["Lens", "LensGetter", "LensNetwork", "LensPutter", "lens"]
