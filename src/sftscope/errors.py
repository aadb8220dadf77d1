"""User-facing errors: the CLI prints the message on one line and exits with status 2."""


class SftscopeError(Exception):
    """A problem with the user's input or environment; the message says what is wrong and what to do."""


class IncompatiblePairError(SftscopeError):
    """Base and fine-tuned model cannot be compared layer by layer."""


class UnknownNameError(SftscopeError):
    """A registry lookup (data set, metric, task, architecture) failed."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = ""):
        msg = f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}"
        super().__init__(msg + (f". {hint}" if hint else ""))
