"""Flow specs: the model, loading, validation and versions."""
