"""Language modelling: ``train-adapter`` (data, adapter) and ``eval --task mlm`` (pppl, evaluate)."""
