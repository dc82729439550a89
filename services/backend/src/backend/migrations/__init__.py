"""Alembic migrations; shipped inside the package so the image can run them."""
