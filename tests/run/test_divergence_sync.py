"""The divergence guard reads the step losses from the device at most every N steps (and at epoch
end, before validation and before a checkpoint), with the same guarantee: a diverged run stops and
never checkpoints a broken model."""

import json
from types import SimpleNamespace

import pytest
import torch

from jsmp.errors import UserError
from jsmp.run.callbacks import DivergedError, NaNGuard


def _trainer(every: int = 20):
    opt = SimpleNamespace(param_groups=[{"lr": 0.5}])
    return SimpleNamespace(current_epoch=0, global_step=0, log_every_n_steps=every, optimizers=[opt], sanity_checking=False)


def _steps(guard, trainer, losses):
    for v in losses:
        trainer.global_step += 1
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(v)}, None, 0)


def test_a_bad_loss_is_reported_at_the_next_check_naming_its_own_step():
    guard, trainer = NaNGuard(max_factor=20.0, every=5), _trainer()
    _steps(guard, trainer, [0.7, float("nan"), 0.7, 0.7])  # steps 1-4: not read yet
    assert len(guard.pending) == 4 and guard.first_loss is None
    with pytest.raises(DivergedError, match=r"^training diverged at epoch 0, step 2: train loss is nan; "
                                            r"lower model.optimizer.lr \(now 0.5\)$"):
        _steps(guard, trainer, [0.7])  # step 5: the check


def test_the_check_runs_every_log_every_n_steps_by_default_and_keeps_the_first_loss():
    guard, trainer = NaNGuard(max_factor=20.0), _trainer(every=3)
    _steps(guard, trainer, [0.5, 0.6, 0.7])
    assert guard.pending == [] and guard.first_loss == pytest.approx(0.5)
    _steps(guard, trainer, [0.5, 11.0])  # 11 > 20 x 0.5, not read until the epoch ends
    with pytest.raises(DivergedError, match=r"step 5: train loss 11 is over 20x its first value 0.5"):
        guard.on_train_epoch_end(trainer, None)


@pytest.mark.parametrize("hook", ["on_save_checkpoint", "on_validation_start"])
def test_pending_losses_are_checked_before_a_checkpoint_or_validation(hook):
    guard, trainer = NaNGuard(every=100), _trainer()
    _steps(guard, trainer, [0.7, float("inf")])
    module = torch.nn.Linear(2, 1)
    args = (trainer, module, {}) if hook == "on_save_checkpoint" else (trainer, module)
    with pytest.raises(DivergedError, match="step 2: train loss is inf"):
        getattr(guard, hook)(*args)


def test_state_dict_holds_the_first_loss_even_before_it_was_checked():
    guard, trainer = NaNGuard(every=100), _trainer()
    _steps(guard, trainer, [0.25, 0.3])
    assert guard.state_dict() == {"first_loss": 0.25}


def test_non_finite_weights_fail_before_validation():
    guard, trainer, module = NaNGuard(), _trainer(), torch.nn.Linear(2, 1)
    guard.on_validation_start(trainer, module)  # finite: passes
    with torch.no_grad():
        module.bias.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"non-finite weights in bias"):
        guard.on_validation_start(trainer, module)


@pytest.mark.parametrize("every", [0, 2.5])
def test_a_bad_check_interval_is_a_user_error(every):
    with pytest.raises(UserError, match=rf"diverge_check_every must be an integer >= 1 or null, got {every}"):
        NaNGuard(every=every)


def test_a_huge_lr_run_checked_only_at_epoch_end_still_stops_without_a_checkpoint(tiny_store, tmp_path, train_app):
    # log_every_n_steps far above the steps per epoch: the losses are read only at the epoch's end
    p = train_app(f"data.store={tiny_store}", "model.optimizer.lr=1e3", "data.batch_size=128", "trainer.max_epochs=3",
                  "trainer.log_every_n_steps=1000", "logger=none", run="huge")
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "training diverged at epoch 0, step" in err[0] and "(now 1000)" in err[0], p.stderr[-2000:]
    m = json.loads((tmp_path / "huge" / "metrics.json").read_text())
    assert m["status"] == "failed" and "diverged" in m["error"] and m.get("best_epoch") is None
    assert not list((tmp_path / "huge").glob("checkpoints/*.ckpt"))
