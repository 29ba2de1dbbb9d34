"""A run spread over processes and machines: shards and merge, Ray."""
