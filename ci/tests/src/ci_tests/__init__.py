"""Engine tests of the ci module: one function per capability, and `all` running them together.

Each function raises when the capability misbehaves. Run with `dagger call -m ci/tests all`.
"""

from .main import CiTests as CiTests
