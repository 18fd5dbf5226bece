"""Alembic migrations of the archive's schema, shipped inside the package so an installed wheel upgrades too."""
