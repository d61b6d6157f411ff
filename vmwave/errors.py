"""One error type that always says what is wrong and what to do about it, and which known cause it is."""


class VmwaveError(Exception):
    """A failure a person can act on: ``what`` went wrong, ``fix`` says how to proceed.

    ``cause`` is its id in ``vmwave.domain.diagnosis.CAUSES``: what the ledger records for a failed step.
    """

    cause = "unexpected"

    def __init__(self, what: str, fix: str = "", cause: str | None = None):
        self.what = what
        self.fix = fix
        if cause:
            self.cause = cause
        super().__init__(f"{what}. {fix}".strip() if fix else what)


class InputError(VmwaveError):
    """A file or option is invalid; raised before anything is changed."""

    cause = "input-invalid"

    def __init__(self, source: str, field: str, problem: str, fix: str):
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}", fix)


class InputErrors(InputError):
    """Every problem of one file at once, each an ``InputError``: a person fixes them all before trying again."""

    def __init__(self, problems: list[InputError]):
        self.problems = problems
        first = problems[0]
        super().__init__(first.source, first.field, first.problem, first.fix)
        self.args = ("\n".join(str(p) for p in problems),)

    def __str__(self) -> str:
        return self.args[0]


class ConnectionFailed(VmwaveError):
    """vCenter (or another system) could not be reached or refused us; ``cause`` says which."""

    cause = "vcenter-unreachable"


class TimedOut(VmwaveError):
    """What was waited for did not happen in time."""

    cause = "timed-out"


class Cancelled(VmwaveError):
    """A person cancelled this VM's migration (`vmwave cancel`): it is rolled back, the rest of the wave goes on."""

    cause = "cancelled"
