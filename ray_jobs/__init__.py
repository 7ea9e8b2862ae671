"""Experiment grids as Ray tasks, with a result store that lets a re-run resume.

- :mod:`ray_jobs.spec`   – TOML spec files, grid expansion, run hashes (``load_spec``, ``expand``)
- :mod:`ray_jobs.store`  – the result store, one folder per run (``Store``)
- :mod:`ray_jobs.claims` – which driver runs a run: leases taken over when stale (``claim_is_stale``)
- :mod:`ray_jobs.objstore` – the store on object storage, ``--store s3://bucket/prefix`` (``open_store``,
  ``ObjectStore``; claims in :mod:`ray_jobs.objclaims`); :mod:`ray_jobs.nodecache` – a worker's scratch,
  input cache and upload
- :mod:`ray_jobs.results` – checks a result must pass to count as done (``register_result_validator``)
- :mod:`ray_jobs.kinds`  – stage kinds: train, eval, construct, theory, probe (``register``)
- :mod:`ray_jobs.schema` – config schemas of the kinds, checked before anything runs (``validate_spec``)
- :mod:`ray_jobs.runner` – execution on Ray with retries and failure recording (``run_spec``, ``describe``)
- :mod:`ray_jobs.scheduler` – the grid scheduler (``Scheduler``: ready / submit / on_result / poll;
  ``ResourcePolicy``); :mod:`ray_jobs.progress` – its progress display (an observer)
- :mod:`ray_jobs.embedded` – the embedded Ray: loopback only, private temp dir, workers at niceness 0
- :mod:`ray_jobs.export` – ``results`` rows (CSV / JSON, one per run)
- :mod:`ray_jobs.cli`    – ``python -m ray_jobs run|status|results SPEC``

See ``docs/ray.md`` for the spec syntax, the store layout and cluster use.
"""
