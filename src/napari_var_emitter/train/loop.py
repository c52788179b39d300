"""`var-emitter train`: tokenizer first, then transformer + heads with the tokenizer frozen."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io.atomic import atomic_path
from ..model.checkpoint import load_model, load_training_state, save_model
from ..model.predictor import VAREmitterPredictor
from .config import TrainConfig
from .heldout import evaluate_heldout, heldout_stacks
from .losses import (ProgressiveScaleWeights, localisation_loss, mixture_localisation_loss, scale_map_loss, token_loss,
                     tokenizer_loss)

STATE_FILE = "train_state.pt"
LOG_FILE = "log.csv"


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(config: TrainConfig, out_dir: str | Path, source, device: str = "cpu", resume: bool = False,
          init_weights: str | Path | None = None, log: Callable[[str], None] = print,
          stop_after_s: float | None = None) -> Path | None:
    """Train and return the path of the final weights (OUT/model.safetensors + model.json).

    `source` gives batches (SimulatedSource or LabelledSource). With `init_weights` the model
    starts from that checkpoint (fine-tuning: the tokenizer stage is skipped). With
    `stop_after_s`, stops at the first checkpoint after that many seconds and returns None (the
    run resumes from there with resume=True).
    """
    steps = training_steps(config, out_dir, source, device, resume, init_weights, log, stop_after_s)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def training_steps(config: TrainConfig, out_dir: str | Path, source, device: str = "cpu", resume: bool = False,
                   init_weights: str | Path | None = None, log: Callable[[str], None] = print,
                   stop_after_s: float | None = None, fine_tuned_on: dict | None = None):
    """`train` as a generator: yields each step's log row (dict); returns the weights' path (None
    when stopped by stop_after_s). Closing it early (a GUI's Cancel) leaves the last checkpoint
    state and writes no model. fine_tuned_on ({"stack": name, "data": how}): the stack a
    fine-tune was for, stated in the card (predict.envelope warns on another stack)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.training.seed)
    config, parent, parent_card = _with_parent(config, init_weights, device)
    model = parent.train() if parent is not None else VAREmitterPredictor(config.model).to(device)
    t_cfg = config.training
    var_prior = config.model.var_prior
    tokenizer_steps = _tokenizer_steps(config, init_weights)
    tok_opt = (torch.optim.AdamW(model.tokenizer.parameters(), lr=t_cfg.tokenizer_lr, weight_decay=0.0)
               if var_prior else None)
    main_params = [p for n, p in model.named_parameters() if not n.startswith("tokenizer.")]
    opt = torch.optim.AdamW(main_params, lr=t_cfg.lr, weight_decay=t_cfg.weight_decay)
    weights = ProgressiveScaleWeights(t_cfg.scale_weights, t_cfg.progressive)
    step, wall = 0, 0.0
    state_path = out_dir / STATE_FILE
    if resume and state_path.exists():
        state = load_training_state(state_path)
        model.load_state_dict(state["model"])
        if tok_opt is not None:
            tok_opt.load_state_dict(state["tok_opt"])
        opt.load_state_dict(state["opt"])
        step, wall = int(state["step"]), float(state["wall_s"])
        source.rng.bit_generator.state = json.loads(state["rng"])
        log(f"resumed at step {step}")
    grids = config.model.grids(t_cfg.tile_px, t_cfg.tile_px)
    heldout = _heldout_of(config)
    total = tokenizer_steps + t_cfg.steps
    logger = _CsvLog(out_dir / LOG_FILE, resume_step=step)
    model.train()
    while step < total:
        started = time.perf_counter()
        batch = source.batch(t_cfg.batch_size)
        # seconds this step waited for its batch: with --workers, whether simulation keeps up
        row: dict[str, Any] = {"step": step, "data_s": round(time.perf_counter() - started, 4)}
        if var_prior:
            model.tokenizer.requires_grad_(step < tokenizer_steps)  # frozen after its stage
        if step < tokenizer_steps:
            row.update(_tokenizer_step(model, tok_opt, batch, grids, step, tokenizer_steps, t_cfg, device))
        else:
            main_step = step - tokenizer_steps
            weights.set_epoch(main_step, t_cfg.steps)
            row.update(_main_step(model, opt, batch, grids, weights, main_step, t_cfg, device))
        wall += time.perf_counter() - started
        row["wall_s"] = round(wall, 2)
        step += 1
        if step >= tokenizer_steps and (step - tokenizer_steps) % t_cfg.eval_every == 0 and step > tokenizer_steps:
            row.update(evaluate_heldout(model, heldout))
            log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        elif step % 50 == 0:
            log(f"step {step}/{total} " + "  ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                    if isinstance(v, float) and k != "wall_s"))
        logger.write(row)
        yield row
        if step % t_cfg.checkpoint_every == 0 or step == total:
            logger.flush()
            _save_state(state_path, model, tok_opt, opt, step, wall, source)
            if stop_after_s is not None and step < total and time.perf_counter() - began >= stop_after_s:
                log(f"stopped at step {step}/{total} (checkpoint {state_path}); continue with --resume")
                return None
    return _save_run_model(out_dir, model, config, {"steps": t_cfg.steps, "tokenizer_steps": tokenizer_steps},
                           wall, device, evaluate_heldout(model, heldout), init_weights, parent_card, log,
                           fine_tuned_on)


def export_checkpoint(config: TrainConfig, out_dir: str | Path, device: str = "cpu",
                      init_weights: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """OUT/model.safetensors and its card from a run's last checkpoint, without training: the
    model so far of a run in progress (its card states the steps done and the run's total, and
    its held-out check). The run resumes as before; its end writes the file again."""
    out_dir = Path(out_dir)
    if not (out_dir / STATE_FILE).exists():
        raise InputError(f"{out_dir / STATE_FILE} does not exist: no checkpoint to export")
    config, _, parent_card = _with_parent(config, init_weights, device)
    state = load_training_state(out_dir / STATE_FILE)
    model = VAREmitterPredictor(config.model).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"{out_dir / STATE_FILE} is the checkpoint of another architecture than the config's") from exc
    model.eval()
    tokenizer_steps, step = _tokenizer_steps(config, init_weights), int(state["step"])
    done = {"steps": max(step - tokenizer_steps, 0), "tokenizer_steps": min(step, tokenizer_steps),
            "run_steps": config.training.steps}
    return _save_run_model(out_dir, model, config, done, float(state["wall_s"]), device,
                           evaluate_heldout(model, _heldout_of(config)), init_weights, parent_card, log)


def _with_parent(config: TrainConfig, init_weights: str | Path | None,
                 device: str) -> tuple[TrainConfig, VAREmitterPredictor | None, dict[str, Any]]:
    """(the config, with the parent's architecture when fine-tuning from init_weights; the parent
    model; its card), or (config, None, {}) for a run from scratch."""
    if init_weights is None:
        return config, None, {}
    model, parent_card = load_model(init_weights, device)
    if model.config != config.model:
        config = for_parent(config, model.config, parent_card)
    return config, model, parent_card


def _tokenizer_steps(config: TrainConfig, init_weights) -> int:
    """The tokenizer steps of a run: none when fine-tuning (the parent's tokenizer) or without
    the VAR prior."""
    return 0 if init_weights is not None or not config.model.var_prior else config.training.tokenizer_steps


def _heldout_of(config: TrainConfig):
    """The held-out stacks a run is checked on: 2-D, or through its calibration (the middle of
    its calibration family) in 3-D."""
    family = config.simulation.psf_family
    return heldout_stacks(psf=family.middle() if family is not None else config.simulation.psf_calibration)


def _save_run_model(out_dir: Path, model, config: TrainConfig, steps: dict[str, int], wall: float, device: str,
                    heldout: dict, init_weights, parent_card: dict, log: Callable[[str], None],
                    fine_tuned_on: dict | None = None) -> Path:
    """OUT/model.safetensors with its card (the steps, time, device and commit of the run, the
    parent's stages when it was fine-tuned, the stack it was fine-tuned on, the config, the
    held-out check) and the curves."""
    final = out_dir / "model.safetensors"
    card = {"training": {**steps, "wall_s": round(wall, 1), "device": device, "commit": _commit()},
            **({"init": {"weights": Path(init_weights).name,  # the parent's stages, newest first
                         **{k: parent_card[k] for k in ("training", "train_config", "init") if k in parent_card}}}
               if init_weights is not None else {}),
            **({"fine_tuned_on": fine_tuned_on} if fine_tuned_on else {}),
            "train_config": config.to_dict(), "heldout": heldout}
    save_model(final, model, card)
    plot_log(out_dir / LOG_FILE, out_dir / "training_curves.png")
    log(f"saved {final} ({card['heldout']})")
    return final


def for_parent(config: TrainConfig, model_config, parent_card: dict) -> TrainConfig:
    """The config of fine-tuning a parent model: the parent's architecture; where the scale
    weights were written for another number of scales, the parent's own training scale weights.
    A 3-D parent needs a 3-D simulation (one calibration or a family) and a 2-D parent a 2-D one."""
    if model_config.with_z != config.model.with_z:
        raise InputError("the model to fine-tune is a 3-D model: give its PSF calibration (train --psf PSF.json)"
                         if model_config.with_z else
                         "the model to fine-tune is a 2-D model: a PSF calibration needs a 3-D model to start from")
    training = config.training
    if len(training.scale_weights) != len(model_config.patch_nums):
        parent = parent_card.get("train_config", {}).get("training", {}).get("scale_weights", ())
        if len(parent) != len(model_config.patch_nums):
            raise InputError(f"the model has {len(model_config.patch_nums)} scales: give training.scale_weights "
                             "with one weight per scale")
        training = dataclasses.replace(training, scale_weights=tuple(parent))
    return TrainConfig(model=model_config, training=training, simulation=config.simulation)


def _tokenizer_step(model, opt, batch, grids, step, total, t_cfg, device) -> dict[str, float]:
    tokenizer = model.tokenizer
    for group in opt.param_groups:
        group["lr"] = learning_rate(step, total, t_cfg.tokenizer_lr, t_cfg.warmup_steps)
    target = batch.token_map.to(device)
    pred, vq_loss, usage, _ = tokenizer(target, grids)
    loss, parts = tokenizer_loss(pred, target, vq_loss)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), t_cfg.grad_clip)
    opt.step()
    if step % 100 == 99 and step < total * 0.8:
        with torch.no_grad():
            tokenizer.quantizer.restart_dead_codes(tokenizer.encode(target))
    return {"stage": "tokenizer", "loss": loss.item(), "code_usage": usage.item(),
            **{k: v.item() for k, v in parts.items()}}


def _main_step(model, opt, batch, grids, weights, step, t_cfg, device) -> dict[str, float]:
    for group in opt.param_groups:
        group["lr"] = learning_rate(step, t_cfg.steps, t_cfg.lr, t_cfg.warmup_steps)
    token_part, head, row = _token_losses(model, batch, grids, weights, device)
    if t_cfg.localisation_loss == "mixture":
        loc, parts = mixture_localisation_loss(head, batch.token_map.to(device), batch.background.to(device),
                                               model.config.with_z)
    else:
        loc, parts = localisation_loss(head, batch.dense_map.to(device), batch.background.to(device),
                                       model.config.with_z)
    loss = token_part + loc
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], t_cfg.grad_clip)
    opt.step()
    return {"stage": "main", "loss": loss.item(), **row, **{k: v.item() for k, v in parts.items()}}


def _token_losses(model, batch, grids, weights, device):
    """Teacher-forced pass: (token cross-entropy + per-scale map loss, the localisation head's
    output, their log row); the no-VAR baseline has no token losses (0, head output, {})."""
    photons = batch.photons.to(device)
    calibration = None if batch.calibration is None else batch.calibration.to(device)
    if not model.config.var_prior:
        return 0.0, model(photons, None, grids, calibration)[2], {}
    with torch.no_grad():
        tokenizer = model.tokenizer.eval()
        idx_list = tokenizer.quantizer.tokens(tokenizer.encode(batch.token_map.to(device)), grids)
    logits, probs, head = model(photons, idx_list, grids, calibration)
    w = weights.weights
    tok, ce, acc = token_loss(logits, idx_list, w)
    maps, _ = scale_map_loss(probs, batch.token_map[:, :1].to(device), w)
    row = {"tokens": tok.item(), "maps": maps.item()}
    row.update({f"ce_s{i}": c.item() for i, c in enumerate(ce)})
    row.update({f"acc_s{i}": a.item() for i, a in enumerate(acc)})
    return tok + maps, head, row


def _save_state(path: Path, model, tok_opt, opt, step: int, wall: float, source) -> None:
    state = {"model": model.state_dict(), "tok_opt": tok_opt.state_dict() if tok_opt else {}, "opt": opt.state_dict(),
             "step": step, "wall_s": wall, "rng": json.dumps(source.rng.bit_generator.state)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class _CsvLog:
    """Rows with varying keys -> CSV with the union of columns (rewritten atomically).

    Resuming at step k keeps the rows before k: rows logged after the last checkpoint are
    dropped, since those steps run again."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = list(csv.DictReader(path.open())) if resume_step > 0 and path.exists() else []
        self.rows = [r for r in rows if int(r["step"]) < resume_step]

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) % 25 == 0 or "low_jaccard" in row:
            self.flush()

    def flush(self) -> None:
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)


def plot_log(log_csv: Path, png: Path) -> None:
    """Training curves: tokenizer loss and code usage; per-scale CE and accuracy; held-out JI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    log = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    tok = log[log["stage"] == "tokenizer"]
    main = log[log["stage"] == "main"]
    if len(tok):
        axes[0].plot(tok["step"], tok["loss"].rolling(20, min_periods=1).mean(), label="tokenizer loss")
        axes[0].plot(tok["step"], tok["code_usage"], label="code usage (batch)")
        axes[0].set_yscale("log")
        axes[0].legend()
    else:
        axes[0].text(0.5, 0.5, "no tokenizer stage\n(fine-tuning keeps the parent's)", ha="center",
                     transform=axes[0].transAxes)
    for column in [c for c in log.columns if c.startswith("ce_s")]:
        axes[1].plot(main["step"], main[column].rolling(20, min_periods=1).mean(), label=column)
    for column in [c for c in log.columns if c.startswith("acc_s")]:
        axes[2].plot(main["step"], main[column].rolling(20, min_periods=1).mean(), label=column)
    for column in [c for c in log.columns if c.endswith("_jaccard")]:
        points = log.dropna(subset=[column])
        axes[3].plot(points["step"], points[column], "o-", label=column)
    for ax, title in zip(axes, ["tokenizer", "token cross-entropy", "token accuracy", "held-out Jaccard (%)"]):
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
