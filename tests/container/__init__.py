"""The container tests: the Dockerfile.example image in a real engine (marked `container`)."""
