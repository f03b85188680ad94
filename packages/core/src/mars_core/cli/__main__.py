"""``python -m mars_core.cli`` — what ``torchrun -m mars_core.cli run TASK`` launches."""

from mars_core.cli import entry

entry()
