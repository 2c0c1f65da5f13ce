"""What a catalog's hooks.py imports: the `Hooks` registry and the exception that parks.

    from projector.catalog import Hooks, IntegrityBreak

The catalog contract is in docs/catalogs.md; loading lives in `events.catalog`.
"""

from events.catalog import Catalog, Hooks
from projector.errors import IntegrityBreak

__all__ = ["Catalog", "Hooks", "IntegrityBreak"]
