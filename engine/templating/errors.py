"""The TemplateError hierarchy: every error a template raises to its caller."""

from __future__ import annotations


class TemplateError(Exception):
    """A template that cannot be saved or rendered; str() is one line to show the user."""


class TemplateSyntaxProblem(TemplateError):
    """The template does not parse or names an unknown filter: `line N: message`."""

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {' '.join(message.split())}")
        self.line = line


class UndefinedName(TemplateError):
    """The template uses names the context does not define; `names` are their dotted paths."""

    def __init__(self, names: list[str], message: str | None = None) -> None:
        quoted = ", ".join(repr(name) for name in names)
        plural = "s" if len(names) > 1 else ""
        super().__init__(message or f"undefined name{plural} {quoted}")
        self.names = names


class UnsafeTemplate(TemplateError):
    """The template reaches for something the sandbox refuses."""


class TemplateTooSlow(TemplateError):
    """Rendering ran past its time limit."""


class TemplateTooLarge(TemplateError):
    """Rendering wrote more than its output limit or built a value past the size limits."""
