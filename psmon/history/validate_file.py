"""`psmon validate FILE`: check a file of events against the contract without loading it.

Every row goes through `validate_event`, stage 1's validation, so a file that passes here is
taken whole by `psmon replay` and by the live pipeline. The file is streamed (`sources`), never
held in memory, lines included; only the first few rejected rows are kept, as examples. A row
the reader itself rejects (over-long, not UTF-8, a Parquet value with no contract type) is
counted like any invalid row, with the reason `psmon replay` stores it under.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from psmon.history.sources import read_messages
from psmon.schemas.validation import Invalid, validate_event

__all__ = ["MAX_EXAMPLES", "FileValidation", "validate_file"]

MAX_EXAMPLES: Final = 20


@dataclass
class FileValidation:
    total: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, Invalid]] = field(default_factory=list)  # (row, verdict), first rows first

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_reason.values())

    @property
    def valid(self) -> int:
        return self.total - self.invalid


def validate_file(path: Path, *, max_examples: int = MAX_EXAMPLES) -> FileValidation:
    """Counts of valid and invalid rows of `path` (JSONL, CSV or Parquet), by reason."""
    result = FileValidation()
    for row, message in read_messages(path):
        result.total += 1
        verdict = message if isinstance(message, Invalid) else validate_event(message)
        if isinstance(verdict, Invalid):
            result.invalid_by_reason[verdict.reason] += 1
            if len(result.examples) < max_examples:
                result.examples.append((row, verdict))
    return result
