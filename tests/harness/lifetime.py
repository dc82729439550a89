"""Children that die with their parent: the local app's own helper (ci.localapp.lifetime)."""

from ci.localapp.lifetime import INSTALL_HINT, LifetimeError, bound_to_parent

__all__ = ["INSTALL_HINT", "LifetimeError", "bound_to_parent"]
