"""scripts/engine.sh: reading a process that ends while the script looks at it."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO


def test_cmdline_of_a_gone_process_is_silent() -> None:
    # `up` and `down` walk /proc; a process that ends between the glob and the
    # read made bash print `/proc/N/cmdline: No such file or directory`.
    script = (REPO / "scripts" / "engine.sh").read_text()
    fn = re.search(r"^cmdline_of\(\) \{.*\}$", script, flags=re.M)
    assert fn is not None
    res = subprocess.run(["bash", "-c", f"{fn.group(0)}\ncmdline_of 999999999; echo rc=$?\n"
                                        "cmdline_of $$ >/dev/null; echo rc=$?"],
                         capture_output=True, text=True, timeout=30)
    assert res.stderr == ""
    assert res.stdout == "rc=1\nrc=0\n"
