"""Everything that builds Dagger containers: toolchains, stages, delivery.

`ci.main` (the public functions) calls into here; every decision comes from `ci.core`, which
never imports dagger.
"""
