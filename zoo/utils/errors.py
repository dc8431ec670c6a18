"""Failures outside the input's fault that the commands still report in one line (exit status 2)."""


class WorkerDied(RuntimeError):
    """A worker process ended without an answer (killed, out of memory): the message says what was lost and how to
    go on."""
