"""Errors every layer shares: raised by the core, shown to the user by the web layer."""


class NotFound(LookupError):
    """The thing does not exist, or belongs to someone else (the two read the same)."""


class InvalidInput(ValueError):
    """The user asked for something that cannot be done; the message says why."""


class NotAllowed(PermissionError):
    """The user may see this project but not do that here (a viewer changing it, an editor sharing it)."""
