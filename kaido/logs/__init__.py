"""Recording and reading: MCAP with Foxglove schemas, dataset adapters, training shards."""
