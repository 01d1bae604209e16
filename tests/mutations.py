"""Mutation test of the course's checks (issue 18): can the derivation checks and the tests fail?

Each mutation below is a realistic bug, written as an exact source edit of the library. For each, a
fresh copy of lib/unigm is made, the edit is applied to the copy (the original text must occur exactly
once, so that a mutation whose code has moved fails loudly instead of silently testing nothing), and a
child process that imports the copy runs
    (a) the derivation checks named for the mutation (lecture 02's, unigm.course.derivations), and
    (b) the pytest tests named for it (never tests/test_derivations.py: the tests must catch the bug
        on their own, not by re-running the checks).
A mutation is caught when at least one check reports FAIL (an exception inside a check does not count:
the table must still finish) and at least one test fails. The unmutated copy runs first and must pass
everything, which also proves that the child imports the copy and not the installed package.

    OMP_NUM_THREADS=1 python tests/mutations.py            # the table; exit status 1 if anything escapes
    python tests/mutations.py --all-checks                 # run every derivation check for every mutation

Not collected by pytest (the file name does not start with test_). Children are forked where the
platform allows it, after the heavy third-party imports, so that each costs about a second; elsewhere
they are fresh interpreters.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to lib/unigm
    edits: tuple[tuple[str, str], ...]  # (original text, mutated text), each original exactly once
    checks: tuple[str, ...]  # derivation checks by number
    tests: tuple[str, ...]  # pytest node ids (a function name selects all its parameters)


MUTATIONS = [
    Mutation("velocity_from_score: sign of (sigma^2)'/2", "paths.py",
             (("(d_alpha * sigma**2 / alpha - 0.5 * d_sigma_squared) * score",
               "(d_alpha * sigma**2 / alpha + 0.5 * d_sigma_squared) * score"),),
             ("3.4",), ("tests/test_paths.py::test_score_conversions_give_the_exact_marginal_velocity_of_a_mixture",)),
    Mutation("g_squared_ve: factor 2 missing", "schedules.py",
             (("return 2 * sigma_ve(t, sigma_min, sigma_max) ** 2 * math.log",
               "return sigma_ve(t, sigma_min, sigma_max) ** 2 * math.log"),),
             ("12.10", "12.13"), ("tests/test_schedules.py::test_ve_sigma_and_g_squared_is_the_derivative_of_sigma_squared",)),
    Mutation("reverse_sde_ve: g^2/2 instead of g^2", "samplers/sde.py",
             (("return reverse_sde(score, _no_drift, g_squared)",
               "return reverse_sde(score, _no_drift, lambda t: g_squared(t) / 2)"),),
             ("12.13",), ("tests/test_schedules.py::test_ve_samplers_carry_the_noised_gaussian_back",)),
    Mutation("alpha_bar_cosine: cos instead of cos^2", "schedules.py",
             (("f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2", "f = torch.cos((t + s) / (1 + s) * math.pi / 2)"),
              ("return f / math.cos(s / (1 + s) * math.pi / 2) ** 2", "return f / math.cos(s / (1 + s) * math.pi / 2)")),
             ("3.15",), ("tests/test_schedules.py::test_cosine_schedule_matches_its_formula_and_boundaries",)),
    Mutation("linear_to_vp: square root missing", "paths.py",
             (("return x_linear / ((1 - t) ** 2 + t**2) ** 0.5", "return x_linear / ((1 - t) ** 2 + t**2)"),),
             ("3.2",), ("tests/test_schedules.py::test_linear_and_vp_maps_are_round_trips_and_match_snr",)),
    Mutation("DDPM.loss: preconditioning weight 1/c_out^2 dropped", "diffusion/ddpm.py",
             (("            error = error / self.preconditioning(t, x0)[1]\n", "            pass\n"),),
             ("3.12",), ("tests/test_diffusion_targets.py::test_preconditioned_x0_model_with_unit_sigma_data_is_the_v_model",)),
    Mutation("ddim_step: sigma without (1 - a_s)/(1 - a_t)", "samplers/diffusion.py",
             (("sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))", "sigma = eta * math.sqrt(1 - a_t / a_s)"),),
             ("10.6", "10.7"),
             ("tests/test_diffusion_targets.py::test_eta_one_on_the_full_grid_is_the_ancestral_sampler_and_eta_zero_is_"
              "deterministic",
              "tests/test_diffusion_targets.py::test_respaced_ancestral_sampling_is_the_ddpm_posterior_between_non_"
              "adjacent_times")),
    Mutation("F_DIVERGENCES: consistent JS pair of u log u - (u+1) log(u+1)", "gan/fgan.py",
             (("lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2)",
               "lambda u: u * torch.log(u) - (u + 1) * torch.log(u + 1)"),
              ("lambda t: -torch.log(2 - torch.exp(t))", "lambda t: -torch.log(1 - torch.exp(t))"),
              ("lambda v: math.log(2) - F.softplus(-v)", "lambda v: -F.softplus(-v)")),
             ("4.4", "5.10"), ("tests/test_gan.py::test_f_divergences_match_scipy_on_discrete_distributions",)),
    Mutation("F_DIVERGENCES: TV activation tanh (range +-1)", "gan/fgan.py",
             (("lambda v: 0.5 * torch.tanh(v)", "lambda v: torch.tanh(v)"),),
             ("5.11",), ("tests/test_gan.py::test_f_gan_activations_map_into_the_domain_of_the_conjugate",)),
    Mutation("FGAN.generator_loss: sign flipped", "gan/fgan.py",
             (("return -self.f.conjugate(self.f.activation(fake_logits)).mean()",
               "return self.f.conjugate(self.f.activation(fake_logits)).mean()"),),
             ("5.15",), ("tests/test_gan.py::test_f_gan_players_play_the_saddle_point_of_the_bound",)),
    Mutation("VAE.elbo: KL added", "vae/gaussian.py",
             (("        return reconstruction - kl\n", "        return reconstruction + kl\n"),),
             ("6.5", "6.7"), ("tests/test_vae.py::test_elbo_is_a_bound_that_importance_sampling_tightens",)),
    Mutation("VQVAE.quantize: codebook loss detached", "vae/quantized.py",
             (("codebook_loss = (z_e.detach() - e).pow(2)", "codebook_loss = (z_e.detach() - e.detach()).pow(2)"),),
             ("12.7", "12.8"), ("tests/test_vae.py::test_vqvae_losses_send_gradients_where_they_belong",)),
    Mutation("FSQ: even L without the half-integer offset", "nets.py",
             (("offset = torch.where(L % 2 == 0, 0.5, 0.0)", "offset = torch.zeros_like(L)"),),
             ("12.4", "12.5"),
             ("tests/test_vae.py::test_fsq_after_update_counts_its_codes_and_folds_the_batch_into_batchnorm_statistics",)),
]


# -- the child: imports the (mutated) copy, runs checks and tests, writes JSON --------------------------
def child(lib_parent: str, checks: list[str], tests: list[str], out: str) -> None:
    sys.path.insert(0, lib_parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([lib_parent, os.environ.get("PYTHONPATH", "")])
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the tests here need no plugin; loading them costs seconds
    import pytest

    import unigm
    from unigm.course import derivations

    result = {"imported": unigm.__file__, "checks": {}, "failed_tests": [], "tests_run": 0, "pytest_exit": None}
    for name in derivations.names() if checks == ["all"] else checks:
        try:
            report = derivations.run(name)
            raised = report.outcome.values.get("raised")
            result["checks"][report.check.name.split(" ")[0]] = "PASS" if report.passed else (
                "RAISE" if raised else "FAIL")
        except Exception as error:  # the runner itself let an exception through
            result["checks"][name if name != "all" else "?"] = f"RAISE {type(error).__name__}"

    class Collect:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.outcome == "failed":
                result["tests_run"] += report.when == "call"
                if report.failed:
                    result["failed_tests"].append(report.nodeid.split("::", 1)[1])

    if tests:
        os.chdir(ROOT)
        result["pytest_exit"] = int(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir",
                                                 str(ROOT), "-W", "ignore::pytest.PytestConfigWarning", *tests],
                                                plugins=[Collect()]))
    Path(out).write_text(json.dumps(result))


def run_child(lib_parent: Path, checks, tests, log: Path, spawn: bool = False) -> dict:
    out = lib_parent / "result.json"
    args = [str(lib_parent), list(checks), list(tests), str(out)]
    if not spawn and hasattr(os, "fork") and sys.platform.startswith("linux"):
        pid = os.fork()
        if pid == 0:  # the child: silence it into its log, never return into the parent's code
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1), os.dup2(fd, 2)
                child(*args)
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
    else:
        with open(log, "w") as handle:
            subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], stdout=handle, stderr=handle,
                           cwd=ROOT, check=False)
    if not out.exists():
        raise SystemExit(f"the child process died; its output:\n{log.read_text()[-4000:]}")
    return json.loads(out.read_text())


def mutated_copy(source: Path, mutation: Mutation | None, workdir: Path) -> Path:
    """A copy of the package `source` under workdir/lib/unigm, with the mutation applied."""
    target = workdir / "lib" / "unigm"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    if mutation is not None:
        path = target / mutation.file
        text = path.read_text()
        for original, mutated in mutation.edits:
            count = text.count(original)
            if count != 1:
                raise SystemExit(f"mutation {mutation.name!r}: {original!r} occurs {count} times in "
                                 f"{mutation.file} (expected exactly once): update the mutation")
            text = text.replace(original, mutated)
        path.write_text(text)
    return workdir / "lib"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-checks", action="store_true", help="run every derivation check for every mutation")
    parser.add_argument("--whole-files", action="store_true", help="run the whole test files the mutations name")
    parser.add_argument("--lib", type=Path, default=ROOT / "lib" / "unigm", help="the package to mutate")
    parser.add_argument("--spawn", action="store_true", help="fresh interpreters instead of forked children")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*json.loads(args.child))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # import what every child needs once, before forking (never unigm itself: the child imports the copy)
    import ot, pytest, scipy.optimize, scipy.stats, sympy, torch  # noqa: E401, F401

    start = time.perf_counter()
    everything = ["all"] if args.all_checks else None

    def tests_of(mutation):
        return sorted({t.split("::")[0] for t in mutation.tests}) if args.whole_files else list(mutation.tests)
    rows, escaped = [], []
    with tempfile.TemporaryDirectory(prefix="unigm-mutations-") as tmp:
        all_checks = sorted({c for m in MUTATIONS for c in m.checks})
        all_tests = sorted({t for m in MUTATIONS for t in tests_of(m)})
        work = Path(tmp) / "clean"
        lib = mutated_copy(args.lib, None, work)
        clean = run_child(lib, everything or all_checks, all_tests, work / "log.txt", args.spawn)
        bad = [f"{c}: {s}" for c, s in clean["checks"].items() if s != "PASS"] + clean["failed_tests"]
        if not clean["imported"].startswith(str(lib)):
            bad.append(f"the child imported {clean['imported']}, not the copy under {lib}")
        if clean["pytest_exit"] != 0 or clean["tests_run"] < len(all_tests):
            bad.append(f"pytest exit status {clean['pytest_exit']}, {clean['tests_run']} tests run")
        if bad:
            print((work / "log.txt").read_text()[-4000:])
            print("the unmutated library does not pass its own checks and tests:\n  " + "\n  ".join(bad))
            return 1
        for i, mutation in enumerate(MUTATIONS):
            work = Path(tmp) / f"m{i}"
            lib = mutated_copy(args.lib, mutation, work)
            found = run_child(lib, everything or mutation.checks, tests_of(mutation), work / "log.txt", args.spawn)
            failing = [c for c, s in found["checks"].items() if s == "FAIL"]
            raising = [c for c, s in found["checks"].items() if s.startswith("RAISE")]
            caught = bool(failing) and bool(found["failed_tests"])
            rows.append((mutation.name, ", ".join(failing) or "-", ", ".join(raising) or "-",
                         ", ".join(found["failed_tests"]) or "-", "yes" if caught else "NO"))
            if not caught:
                escaped.append(mutation.name)
    headers = ("mutation", "checks that FAIL", "checks that raise", "tests that fail", "caught?")
    widths = [max(len(str(row[k])) for row in rows + [headers]) for k in range(5)]
    widths[3] = min(widths[3], 70)
    for row in [headers, tuple("-" * w for w in widths)] + rows:
        print(" | ".join(str(cell)[:widths[k]].ljust(widths[k]) for k, cell in enumerate(row)))
    print(f"\n{len(rows) - len(escaped)}/{len(rows)} mutations caught (a check FAILs and a test fails) "
          f"in {time.perf_counter() - start:.0f} s")
    if escaped:
        print("escaped: " + "; ".join(escaped))
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
