"""Node type modules; each exports ``NODE_TYPES``, listed in ``dp_assets.catalog.default_catalog``."""
