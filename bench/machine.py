"""What every benchmark prints about the machine it ran on."""

import contextlib
import os
import platform
import subprocess


def machine() -> str:
    """For example '2 CPUs (AMD EPYC 7B13)'."""
    model = ""
    with contextlib.suppress(OSError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    return f"{os.cpu_count()} CPUs ({model or platform.processor() or platform.machine()})"
