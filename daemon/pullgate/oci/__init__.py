"""OCI content access: image layouts (and, later, registries)."""
