"""One error type that always says what is wrong and what to do about it."""


class VmwaveError(Exception):
    """A failure a person can act on: ``what`` went wrong, ``fix`` says how to proceed."""

    def __init__(self, what: str, fix: str = ""):
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. {fix}".strip() if fix else what)


class InputError(VmwaveError):
    """A file or option is invalid; raised before anything is changed."""

    def __init__(self, source: str, field: str, problem: str, fix: str):
        self.source = source
        self.field = field
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}", fix)


class ConnectionFailed(VmwaveError):
    """vCenter (or another system) could not be reached or refused us."""
