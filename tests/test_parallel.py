"""train_many: several jobs in worker processes give exactly the models train_job gives."""
import os

import pytest
import torch

from unigm import data
from unigm.train import Job, TrainingQueue, train_job, train_many

MOONS = data.toy("two_moons")
JOBS = [Job("gan", MOONS, steps=15), Job("flow_matching", MOONS, steps=20, seed=3),
        Job("f_gan", MOONS, steps=10, config={"divergence": "kl"}, label="f_gan (kl)"), Job("vae", MOONS, steps=12)]


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_workers_reproduce_the_in_process_training_bit_for_bit():
    parallel = train_many(JOBS, workers=2, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each worker uses
    try:
        serial = [train_job(job) for job in JOBS]
    finally:
        torch.set_num_threads(threads)
    for job, (model, history), (reference, reference_history) in zip(JOBS, parallel, serial):
        assert type(model) is type(reference) and model.name == job.name and not model.training
        assert same_weights(model, reference), job
        assert history.losses == reference_history.losses and history.steps == job.steps
    assert parallel[2][0].config.divergence == "kl"  # the config override reached the worker


def test_results_come_back_in_the_order_of_the_jobs_and_the_pool_is_reused():
    first = train_many(JOBS[::-1], workers=2, progress=False)
    again = train_many(JOBS[::-1], workers=2, progress=False)
    assert [m.name for m, _ in first] == [job.name for job in JOBS[::-1]]
    assert all(same_weights(a, b) for (a, _), (b, _) in zip(first, again))


def test_a_failing_job_raises_its_error_in_the_caller():
    with pytest.raises(KeyError, match="not_a_model"):
        train_many([Job("gan", MOONS, steps=5), Job("not_a_model", MOONS)], workers=2, progress=False)
    with pytest.raises(TypeError, match="Job"):
        train_many(["gan"], progress=False)


def test_one_worker_trains_in_process(monkeypatch):
    monkeypatch.setenv("UNIGM_WORKERS", "1")
    (model, history), = train_many([JOBS[0]], progress=False)
    assert history.steps == JOBS[0].steps
    monkeypatch.setenv("UNIGM_WORKERS", "0")
    with pytest.raises(ValueError, match="UNIGM_WORKERS"):
        train_many(JOBS, progress=False)


def test_a_student_job_distils_the_teacher_it_is_given_in_a_worker_as_in_process():
    teacher, _ = train_job(Job("ddpm", MOONS, steps=10))
    job = Job("consistency_distillation", MOONS, steps=6, seed=2, teacher=(Job("ddpm", MOONS, steps=10), teacher.state_dict()),
              label="cd (teacher: ddpm)")
    (student, history), (other, _) = train_many([job, Job("gan", MOONS, steps=5)], workers=2, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference, reference_history = train_job(job)
    finally:
        torch.set_num_threads(threads)
    assert same_weights(student, reference) and history.losses == reference_history.losses
    assert same_weights(student.teacher, teacher)  # the teacher arrived intact and stayed frozen
    assert student.config.teacher_steps == 0 and history.steps == 6
    with pytest.raises(TypeError, match="no from_teacher"):
        train_job(Job("gan", MOONS, steps=2, teacher=(Job("ddpm", MOONS), teacher.state_dict())))


def final_loss_and_pid(job, model, history):
    """An evaluation that depends on the trained weights and says where it ran."""
    with torch.no_grad():
        loss = model.loss(MOONS.sample(64, torch.Generator().manual_seed(0)), generator=torch.Generator().manual_seed(1))
    return job.title, round(float(loss), 4), os.getpid()


def test_evaluate_runs_where_each_job_trained_and_matches_the_same_evaluation_here():
    jobs = [Job("flow_matching", MOONS, steps=20, seed=3), Job("vae", MOONS, steps=12)]
    results = train_many(jobs, workers=2, progress=False, evaluate=final_loss_and_pid)
    for job, (model, _, (title, loss, pid)) in zip(jobs, results):
        assert title == job.title and pid != os.getpid()  # measured in a worker
        assert final_loss_and_pid(job, model, None)[1] == loss  # on the same weights as the model returned
    (_, _, (_, here_loss, pid)), = train_many(jobs[:1], workers=1, progress=False, evaluate=final_loss_and_pid)
    assert pid == os.getpid() and abs(here_loss - results[0][2][1]) < 1e-3  # in process (2 threads vs 1)


def test_a_training_queue_gives_the_models_train_many_gives_and_trains_unqueued_jobs_on_collect():
    """TrainingQueue: jobs start at once; collect() returns, in the order asked, exactly what train_many
    returns for the same jobs; a job never queued is trained when collected; close() restores threads."""
    reference = train_many(JOBS, workers=2, progress=False)
    threads = torch.get_num_threads()
    queue = TrainingQueue(JOBS[:3], workers=2)
    assert torch.get_num_threads() == 1  # this process yields the cores to the workers while jobs run
    late, *early = queue.collect(JOBS[3], JOBS[1], JOBS[0], progress=False)  # JOBS[3] was never queued
    (last,) = queue.collect(JOBS[2], progress=False)
    queue.close()
    assert torch.get_num_threads() == threads
    for (model, history), (expected, expected_history) in zip([early[1], early[0], last, late], reference):
        assert same_weights(model, expected) and history.losses == expected_history.losses


def test_a_training_queue_refuses_ambiguous_or_changed_jobs():
    with pytest.raises(ValueError, match="distinct titles"):
        TrainingQueue([Job("gan", MOONS, steps=2), Job("gan", MOONS, steps=3)], workers=1)
    with TrainingQueue([Job("gan", MOONS, steps=2), Job("gan", data.toy("eight_gaussians"), steps=2)], workers=1) as queue:
        with pytest.raises(ValueError, match="differs from the one queued"):  # same title and data, other steps
            queue.collect(Job("gan", MOONS, steps=3))
        queue.collect(Job("gan", MOONS, steps=2), progress=False)
        with pytest.raises(ValueError, match="already collected"):
            queue.collect(Job("gan", MOONS, steps=2))
    with pytest.raises(TypeError, match="Job"):
        TrainingQueue(["gan"])


def test_a_training_queue_hands_the_workers_what_is_needed_first():
    """Only `workers` jobs are handed out at a time; a job submitted first=True, or asked for by collect,
    jumps the jobs still waiting."""
    jobs = [Job("vae", MOONS, steps=5 + i, label=f"vae {i}") for i in range(6)]
    with TrainingQueue(jobs[:4], workers=2) as queue:
        assert [job.title for job, _ in queue._waiting] == ["vae 2", "vae 3"]  # two running, two waiting
        queue.submit(jobs[4], first=True)
        queue.submit(jobs[5])
        order = ["vae 4", "vae 2", "vae 3", "vae 5"]  # handed out from the front as workers free up
        waiting = [job.title for job, _ in queue._waiting]
        assert waiting == order[len(order) - len(waiting):], waiting
        (model, history), = queue.collect(jobs[5], progress=False)
        assert history.steps == 10
        results = queue.collect(*jobs[:5], progress=False)
        assert [h.steps for _, h in results] == [5, 6, 7, 8, 9]
