"""The project's own error types; the CLI maps them to exit codes and prints one line."""


class RaybatchError(Exception):
    """Base of every error the CLI reports as one line instead of a traceback."""

    exit_code = 1


class SpecError(RaybatchError):
    """The job spec is invalid: the message names the file and the key path."""

    exit_code = 2


class InputDataError(RaybatchError):
    """An input file is missing, unreadable, corrupt or has the wrong columns."""

    exit_code = 2


class OutputConflict(RaybatchError):
    """The output path holds something this job did not write, or overlaps the input."""

    exit_code = 2


class ClusterAddressError(RaybatchError):
    """RAY_ADDRESS names something `run` cannot use: a dashboard URL, or nothing answers there."""

    exit_code = 2


class JobFailed(RaybatchError):
    """The job started but could not finish; nothing was published."""

    exit_code = 1


class StageFailed(JobFailed):
    """A stage raised something it did not declare as a row-level error (a bug, a broken model):
    the block fails, and after Ray's retries the job fails with this one line."""


class LockHeld(RaybatchError):
    """Another run holds the output path's (or the job's) lock."""

    exit_code = 3


class RowError(Exception):
    """A row a stage cannot process; `kind` becomes the dead letter's error_type. Not a job error:
    the stage runner isolates the rows that raise it and sends them to the dead letter."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
