"""Models that no training run produced (an ensemble of trained runs, a recalibrated copy),
logged into a run of their own and registered like a trained model.

Why: ``mars-core predict --model models:/...`` and MLflow's serving take registered
versions, so a model combined after training should be one too, with a run that records
where it came from. It is given no monitored value: it was never measured on the
validation split its members were ranked on, so it cannot be compared with the champion
and never takes the ``champion`` alias (``unranked`` in
:func:`mars_core.tracking.registry_ops.register`). Promoting it is a person's decision,
taken after evaluating it (``mlflow`` client or UI: ``set_registered_model_alias``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mars_core.errors import MarsError
from mars_core.tracking import model_io, registry_ops
from mars_core.tracking.mlflow_tracker import param_value
from mars_core.tracking.store import connect, experiment_id, one_line

if TYPE_CHECKING:
    from torch import nn

    from mars_core.config import InputContract, RunConfig

TAG_SOURCE = "mars.composed_from"


def log_and_register(model: nn.Module, cfg: RunConfig, contract: InputContract, *, run_name: str,
                     params: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    """Open a run in the task's experiment, log ``params`` and ``model``, register a version.

    ``sources`` (the model URIs it was built from) go into a tag as well as the params, so
    the registry's version page says what the model is made of. The run is closed FINISHED
    on success and FAILED (with the reason) if logging or registering fails.
    Returns :func:`registry_ops.register`'s dict plus ``run_id`` and ``model_uri``.
    """
    from mlflow.exceptions import MlflowException

    store = connect(cfg.tracking.timeout_s)
    client = store.client
    exp_id = experiment_id(store, cfg.tracking.experiment or cfg.task)
    tags = {"mars.task": cfg.task, "mars.model": cfg.model.name, TAG_SOURCE: param_value(", ".join(sources))}
    try:
        run_id = client.create_run(exp_id, tags=tags, run_name=run_name).info.run_id
    except MlflowException as exc:
        raise MarsError(f"MLflow ({store.uri}): {one_line(exc)}") from None
    try:
        for key, value in params.items():
            client.log_param(run_id, key, param_value(value))
        info = model_io.log_model(model, cfg, contract, run_id, store.uri)
        result = registry_ops.register(store, cfg, info, run_id, monitor=cfg.trainer.monitor,
                                       mode=cfg.trainer.mode, best_value=None,
                                       unranked=f"composed after training ({run_name})")
        uri = f"models:/{result['registered_model']}/{result['model_version']}"
        client.set_tag(run_id, "mars.model_version", uri)
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, OSError, MarsError) as exc:
        reason = str(exc) if isinstance(exc, MarsError) else one_line(exc)
        try:
            client.set_tag(run_id, "mars.failure", reason[:5000])
            client.set_terminated(run_id, "FAILED")
        except MlflowException:
            pass
        raise MarsError(f"MLflow ({store.uri}): {reason}") from None
    return {**result, "run_id": run_id, "model_uri": uri}
