"""Reading and writing files: checkpoints (:mod:`.checkpoints`), analysis inputs (:mod:`.inputs`),
CIFAR directories (:mod:`.cifar`) and all-or-nothing report directories (:mod:`.atomic`).

Everything that reads a user's file goes through here, so that any file that is not what it claims to
be ends in one :class:`~gradflow.errors.DataError` sentence, never a traceback, and never runs code.
"""
