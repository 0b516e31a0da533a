"""Lines the fuzz tests report (budget, time, findings); ``conftest`` prints them as one section."""

__all__ = ("LINES", "report")

LINES: list[str] = []


def report(line: str) -> None:
    LINES.append(line)
