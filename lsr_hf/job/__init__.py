"""The training job built on the library: ``train.run(recipe)`` (what ``scripts/train.py`` and ``lsr-hf train``
run), its output folder (``outputs``), divergence and Ctrl-C guards (``guards``), epoch timing (``timing``), the
preprocessing a model is saved with (``processing``), the model card (``model_card``), the Hub push (``hub``,
``public``) and the ``lsr-hf`` command (``cli``). Import the submodules themselves; this package re-exports nothing,
so that ``import lsr_hf.job`` stays light."""
