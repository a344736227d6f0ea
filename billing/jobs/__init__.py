"""Background jobs, each defined once and run the same way from everywhere.

    registry.py   the jobs: name, interval, what a run does as at an instant, when it is on
    context.py    what a run works with: engine, settings, catalogue, a Stripe client
    runner.py     one run at a time across processes (advisory locks), recorded in job_run
    scheduler.py  APScheduler, inside `billing serve` or as `billing worker`
    models.py     the `job_run` table

The scheduler, the command twins (`billing invoices close`, `billing alerts deliver`,
`billing credits release`, `billing stripe sync`, `billing email send`) and the finance
page's "retry now" all take a job from the registry and run it through the runner.
"""
