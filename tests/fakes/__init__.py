"""In-process fakes of external services used by tests, the demo and benchmarks."""
