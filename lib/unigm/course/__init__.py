"""Course tooling that serves the notebooks, on top of the library (nothing below imports it).

- derivations/  lecture 02's derivations, machine-checked with sympy (`python -m unigm.course.derivations`)
- grading/      the exercise format and the autograder (`unigm-grade`)
- cli.py        the `unigm` command: notebooks from their sources, the headless course run, MNIST
- widgets.py    notebook helpers such as `show_source`

Needs the `course` extra (sympy, scipy, jupytext, nbclient, ...); the models need only torch,
numpy and POT.
"""
