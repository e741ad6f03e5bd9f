"""Training mode: ``model.fit`` with a callback that captures the watched patterns at every
epoch (or every N steps) through the same probe and store writer as batch capture."""
