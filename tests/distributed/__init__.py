"""Multi-device and multi-process checks, each in a subprocess with its own device count."""
