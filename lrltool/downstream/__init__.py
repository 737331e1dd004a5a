"""Downstream tasks: ``finetune``, ``eval --task tc|sa|ner`` and ``eval --prompt`` (docs/design.md
"Downstream").

Layers (each module imports only the ones above it):

- :mod:`lrltool.downstream.data`: task records (one :class:`~lrltool.downstream.data.Example` type, one
  reader), split files, tokenization with word alignment, batches;
- :mod:`lrltool.downstream.model`: the task model: build (MAD-X, fusion, full), export, rebuild a finished
  run (and find the runs of a folder);
- :mod:`lrltool.downstream.metrics`: predictions and their scores;
- :mod:`lrltool.downstream.card`: the model card of a finetune run;
- :mod:`lrltool.downstream.finetune`, :mod:`lrltool.downstream.evaluate`,
  :mod:`lrltool.downstream.prompting`: the cores of ``finetune``, ``eval --task tc|sa|ner --run`` and
  ``eval --prompt``.
"""
