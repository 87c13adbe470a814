"""The loss families, a family a module: overlap statistics, region, pixel-wise, Lovász, spatial."""
