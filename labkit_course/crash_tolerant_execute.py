"""nbgrader's ``Execute``, except that a kernel crash costs only the cell it happened in.

Plain nbgrader gives up on the whole notebook when the kernel dies (a segfault, ``os._exit``, the
out-of-memory killer). Here the cell gets an error output, the kernel is restarted, the earlier
non-test cells are re-run (outputs discarded), and execution goes on, so the rest of the notebook
is still there for the instructor to read.

This file is self-contained (nbgrader and nbclient only): grading copies it next to the course in
the sandbox, where the rest of ``labkit_course`` is not available. Configure it as
``c.Autograde.autograde_preprocessors = ["crash_tolerant_execute.CrashTolerantExecute", ...]``; its
traits are ``Execute``'s (``timeout``, ``startup_timeout``, ``iopub_timeout``...).
"""

import copy

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade, is_solution


class CrashTolerantExecute(Execute):
    """Execute every cell; on a dead kernel, record the crash in that cell, restart and go on."""

    def preprocess_cell(self, cell, resources, index):
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self.log.warning("the kernel died in cell %d: restarting it", index)
            cell.outputs.append(
                new_output(
                    "error",
                    ename="KernelDied",
                    evalue="the kernel died while running this cell (a crash, os._exit, or out of memory)",
                    traceback=["KernelDied: the kernel died while running this cell"],
                )
            )
            run_sync(self.km.restart_kernel)(now=True)
            run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
            for j, earlier in enumerate(self.nb.cells[:index]):
                if earlier.cell_type == "code" and not (is_grade(earlier) and not is_solution(earlier)):
                    self.execute_cell(copy.deepcopy(earlier), j, store_history=False)
            return cell, self.resources
