"""Benchmarks of the service against a trivial reference handler (`make bench`); not part of `make test`."""
