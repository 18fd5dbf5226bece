"""The program database: lineage store and selection policy."""
