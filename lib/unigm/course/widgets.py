"""Notebook helpers: show the library code that runs, so what a learner reads is what executes."""
from __future__ import annotations

import inspect
import textwrap


def show_source(obj) -> None:
    """Display the source of a library function, method or class, syntax-highlighted in Jupyter."""
    source = textwrap.dedent(inspect.getsource(obj))
    try:
        from IPython.display import Code, display

        display(Code(source, language="python"))
    except ImportError:  # plain Python: print it
        print(source)
