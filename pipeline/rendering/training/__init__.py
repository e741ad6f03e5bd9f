"""Pictures of a training run: per-epoch grid pages, evolution sheets, animations and
statistics plots."""
