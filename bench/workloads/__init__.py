"""One module per workload; each has ``run(ctx) -> WorkloadResult`` (see bench.registry)."""
