"""NumPy references, written from the docstring equations; they share no code with the package."""
