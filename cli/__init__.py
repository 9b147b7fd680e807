"""The ``gradflow`` command line (installed as the ``gradflow_cli`` package).

Every command is a thin Typer function over a library call that returns data; library
:class:`gradflow.GradflowError` s become one sentence on stderr and a non-zero exit code here.
"""
