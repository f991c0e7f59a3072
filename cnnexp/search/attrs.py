"""Every Optuna user-attribute name cnnexp writes on a study or trial (MLflow tag names live
in cnnexp.tracking.tags). Readers such as `optuna trials` and optuna-dashboard show them."""

# study (the root `<study>` and each stage `<study>/<stage>`)
FINGERPRINT = "cnnexp.fingerprint"  # hash of recipe + space: resume only the same search
RECIPE = "cnnexp.recipe"  # the composed recipe as YAML
METRIC = "cnnexp.metric"
RUN_ID = "cnnexp.mlflow_run_id"  # the study's / stage's / trial's MLflow run
STAGE = "cnnexp.stage"  # the stage's plan (trials, epochs, sampler, ...)
AFTER = "cnnexp.after"  # the stage it was narrowed from
RANGES = "cnnexp.ranges"
NARROWING = "cnnexp.narrowing"
AFTER_WARNINGS = "cnnexp.after_warnings"
AFTER_SIGNAL = "cnnexp.after_signal"  # the previous stage's signal, as the narrowing read it
SETUP_BY = "cnnexp.setup_by"  # the worker that created it (stale-lock diagnosis)
SIGNAL = "cnnexp.signal"  # a finished stage's analysis (set by whoever narrows from it)
CONFIRM = "cnnexp.confirm"  # the confirming stage's result (on the root study)
FIDELITY = "cnnexp.fidelity"  # does the previous stage's ranking carry to this one?
READY = "cnnexp.ready"

# trial
TICKET = "cnnexp.ticket"  # one of the stage's exactly-N enqueued trials
PROMOTED_FROM = "cnnexp.promoted_from"  # the previous stage's trial whose params it re-trains
WORKER = "cnnexp.worker"
NAME = "cnnexp.name"
REASON = "cnnexp.reason"
SECONDS = "cnnexp.seconds"
DIAGNOSIS = "cnnexp.diagnosis"
SECOND = "cnnexp.second"  # the secondary metric at the trial's epoch: breaks exact ties
EVAL_SIZE = "cnnexp.eval_size"  # validation examples: the noise of an accuracy
CLASSES = "cnnexp.classes"  # the chance level is 1/classes
LAST_LOSS = "cnnexp.last_train_loss"  # a loss stuck at ln C: nothing learned
RETRY_REASON = "cnnexp.retry_reason"
