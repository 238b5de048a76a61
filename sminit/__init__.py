"""sminit: a small PID-1 init for SageMaker and other ML containers."""

__version__ = "0.2.0"
