"""Developer tooling, not part of the user library: benchmarks (:mod:`.bench`), the experiments behind
the committed reports (:mod:`.experiments`) and the regeneration of the demo checkpoints
(:mod:`.demo_checkpoints`). Installed with the package because the CLI's ``bench`` and ``experiment``
commands call it.
"""
