"""The flow designer's server: a JSON API over the flow store, the catalog, validation and runs,
and the built client (``designer/``), served by uvicorn (``dp designer``; docs/designer.md)."""
