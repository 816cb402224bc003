"""Training: the joint objective (Bradley-Terry on pairs + BCE on pointwise compliance) on one scalar head.

Inputs are encoded with the checkpoint's own input template (`models.template`), so training and serving see
identical token ids. LoRA (peft) or full fine-tuning; CPU or CUDA; float32 or bfloat16 autocast; a tqdm bar with loss
and ETA; periodic checkpoints; a fixed seed gives the same run (same data order, same initialisation). An optional
linear-probe stage trains the head alone before fine-tuning (LP-FT: a fitted head sends smaller, better-aimed
gradients into the encoder than a random one, which distorts the pretrained features less).

The reward is the logit of compliance: BCE uses ``sigmoid(reward)`` against the label (comply = 1), and the pair
loss is ``-log sigmoid(r_chosen - r_rejected)``.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from models.checkpoint import resolve_device
from models.template import InputTemplate, build_template
from models.types import Context, EncodedInput, Message, ScoreInput

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "TrainConfig",
    "Unit",
    "bce_loss",
    "bt_loss",
    "encode_records",
    "head_parameters",
    "joint_loss",
    "make_batches",
    "probe_head",
    "train_model",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Training knobs (the defaults of `csrm train`; the bundled recipe passes more, see `make train-default`)."""

    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 512
    policy_token_budget: int = 256
    conversation_budget: int = 144
    context: Context = "conversation"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_top_layers: int | None = 3
    attention_dropout: float | None = None
    frozen_layers_dropout: bool = True
    full_finetune: bool = False
    probe_steps: int = 0
    w_bt: float = 1.0
    w_bce: float = 1.0
    w_wording: float = 1.0
    seed: int = 0
    time_budget_s: float | None = None
    checkpoint_every: int = 200
    threads: int | None = None
    device: str = "auto"
    precision: str = "auto"
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in csrm.json ``training_data.recipe``)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Unit:
    """One training unit: a pointwise item (``label`` set), a pair (``rejected`` set) or wording twins (``twin``).

    A ``labelled`` pair is also two pointwise items, ``first`` complying and ``rejected`` violating: each sequence is
    computed once for both the Bradley-Terry and the cross-entropy term. Wording twins are two pointwise items with
    one ``label``: the same conversation under two wordings of the same rules, whose rewards should be equal.
    """

    first: EncodedInput
    label: float | None = None
    rejected: EncodedInput | None = None
    labelled: bool = False
    twin: EncodedInput | None = None

    @property
    def second(self) -> EncodedInput | None:
        return self.rejected or self.twin

    @property
    def seqs(self) -> int:
        return 1 if self.second is None else 2

    @property
    def width(self) -> int:
        return max(self.first.tokens, self.second.tokens if self.second else 0)


def bt_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry loss: mean of ``-log sigmoid(chosen - rejected)``."""
    return -F.logsigmoid(chosen - rejected).mean()


def bce_loss(rewards: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(reward)`` against labels (1 = comply, 0 = violate)."""
    return F.binary_cross_entropy_with_logits(rewards, labels)


def wording_loss(first: torch.Tensor, twin: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the rewards of wording twins."""
    return (first - twin).pow(2).mean()


def joint_loss(point_rewards: torch.Tensor, labels: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor,
               *, w_bce: float = 1.0, w_bt: float = 1.0, twins: tuple[torch.Tensor, torch.Tensor] | None = None,
               w_wording: float = 1.0) -> torch.Tensor:
    """``w_bce * BCE + w_bt * BT + w_wording * wording``; a term with no items contributes 0."""
    total = point_rewards.new_zeros(())
    if point_rewards.numel():
        total = total + w_bce * bce_loss(point_rewards, labels)
    if chosen.numel():
        total = total + w_bt * bt_loss(chosen, rejected)
    if twins is not None and twins[0].numel():
        total = total + w_wording * wording_loss(*twins)
    return total


def _to_input(record: dict[str, Any], response: str) -> ScoreInput:
    msgs = [Message(m["role"], m["content"]) for m in record["messages"]]
    msgs.append(Message("assistant", response))
    return ScoreInput(record["policy_text"], tuple(msgs))


class TemplatePool:
    """Encoder templates by max length, so each item gets ``policy + conversation_budget`` tokens at most."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template_id: str, cfg: TrainConfig) -> None:
        self._tok, self._tid, self._cfg = tokenizer, template_id, cfg
        self._base = build_template(template_id, tokenizer, max_length=cfg.max_length,
                                    policy_token_budget=cfg.policy_token_budget, context=cfg.context)
        self._pool: dict[int, InputTemplate] = {}

    def encode(self, item: ScoreInput) -> EncodedInput:
        """Encode with the serving template, limiting the conversation to the training budget."""
        n = self._base.policy_tokens(item.policy_text)
        length = min(self._cfg.max_length, 16 * math.ceil((n + 4 + self._cfg.conversation_budget) / 16))
        if length not in self._pool:
            self._pool[length] = build_template(self._tid, self._tok, max_length=length,
                                                policy_token_budget=min(self._cfg.policy_token_budget, length - 8),
                                                context=self._cfg.context)
        return self._pool[length].encode(item)


def encode_records(records: Sequence[dict[str, Any]], encode: Callable[[ScoreInput], EncodedInput]) -> list[Unit]:
    """Encode canonical records into units, skipping (and logging) records the template refuses.

    Point records that share a ``flip`` id (one conversation under contrasting policies) with one ``comply`` and one
    ``violate`` label become one labelled pair unit, comply over violate: the Bradley-Terry term on that pair sees only
    the policy change, which is what teaches the model to read the configuration, and each side keeps its
    cross-entropy term. Point records that share a ``twin`` id and a label become one wording-twin unit.
    """
    units: list[Unit] = []
    groups: dict[str, dict[str, list[Unit]]] = {"flip": defaultdict(list), "twin": defaultdict(list)}
    skipped = 0
    for rec in records:
        try:
            if rec["kind"] == "point":
                unit = Unit(encode(_to_input(rec, rec["response"])), label=1.0 if rec["label"] == "comply" else 0.0)
                key = next((k for k in groups if rec.get(k) is not None), None)
                if key is None:
                    units.append(unit)
                else:
                    groups[key][str(rec[key])].append(unit)
            else:
                units.append(Unit(encode(_to_input(rec, rec["chosen"])),
                                  rejected=encode(_to_input(rec, rec["rejected"]))))
        except Exception as exc:  # noqa: BLE001 - InputTooLong / InvalidInput: skip the record
            skipped += 1
            logger.debug("skipping record: %s", exc)
    if skipped:
        logger.warning("skipped %d of %d records the template could not encode", skipped, len(records))
    for key, by_id in groups.items():
        for group in by_id.values():
            units += _join_group(key, group)
    return units


def _join_group(key: str, group: list[Unit]) -> list[Unit]:
    """A flip group with one comply and one violate unit as one labelled pair, comply over violate; two twins with one
    label as one wording-twin unit; any other group as its pointwise units."""
    if key == "flip":
        comply, violate = ([u for u in group if u.label == y] for y in (1.0, 0.0))
        if len(comply) == len(violate) == 1:
            return [Unit(comply[0].first, rejected=violate[0].first, labelled=True)]
    elif len(group) == 2 and group[0].label == group[1].label:
        return [Unit(group[0].first, label=group[0].label, twin=group[1].first)]
    return group


def make_batches(units: Sequence[Unit], batch_size: int, rng: random.Random, bucket: int = 64) -> list[list[Unit]]:
    """Shuffle, sort by length inside buckets of ``bucket`` batches, pack up to ``batch_size`` sequences each."""
    order = list(units)
    rng.shuffle(order)
    batches: list[list[Unit]] = []
    span = batch_size * bucket
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda u: u.width)
        cur: list[Unit] = []
        for u in chunk:
            if cur and sum(x.seqs for x in cur) + u.seqs > batch_size:
                batches.append(cur)
                cur = []
            cur.append(u)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


def _collate(items: Sequence[EncodedInput], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(i.tokens for i in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    types = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        ids[row, : it.tokens] = torch.tensor(it.input_ids)
        mask[row, : it.tokens] = 1
        if it.token_type_ids is not None:
            types[row, : it.tokens] = torch.tensor(it.token_type_ids)
    out = {"input_ids": ids, "attention_mask": mask}
    if any(it.token_type_ids is not None for it in items):
        out["token_type_ids"] = types
    return {k: v.to(device) for k, v in out.items()}


def batch_loss(model: torch.nn.Module, batch: Sequence[Unit], pad_id: int, device: torch.device,
               cfg: TrainConfig) -> torch.Tensor:
    """Forward one batch (points, pair firsts, pair seconds in one pass) and return the joint loss.

    The sides of labelled pairs join the pointwise items: chosen as comply (1), rejected as violate (0); so do both
    sides of wording twins, with their label.
    """
    points = [u for u in batch if u.second is None]
    pairs = [u for u in batch if u.rejected is not None]
    twins = [u for u in batch if u.twin is not None]
    seqs = [u.first for u in points + pairs + twins] + [u.second for u in pairs + twins if u.second]
    dtype = _autocast_dtype(cfg, device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        rewards = model(**_collate(seqs, pad_id, device)).logits.reshape(-1).float()
    n_p, n_q, n_t = len(points), len(pairs), len(twins)
    firsts, seconds = rewards[n_p:n_p + n_q + n_t], rewards[n_p + n_q + n_t:]
    chosen, rejected = firsts[:n_q], seconds[:n_q]
    twin_rewards = (firsts[n_q:], seconds[n_q:])
    sides = torch.tensor([i for i, u in enumerate(pairs) if u.labelled], dtype=torch.long, device=device)
    point_rewards = torch.cat([rewards[:n_p], chosen[sides], rejected[sides], *twin_rewards])
    twin_labels = [u.label or 0.0 for u in twins] * 2
    labels = torch.tensor([u.label or 0.0 for u in points] + [1.0] * len(sides) + [0.0] * len(sides) + twin_labels,
                          dtype=rewards.dtype, device=device)
    return joint_loss(point_rewards, labels, chosen, rejected, w_bce=cfg.w_bce, w_bt=cfg.w_bt, twins=twin_rewards,
                      w_wording=cfg.w_wording)


def resolve_precision(precision: str, device_type: str) -> str:
    """``auto``: bfloat16 on CUDA and on a CPU with native bfloat16 instructions, float32 on other CPUs (where
    bfloat16 is emulated: the bundled recipe's first probe steps took 5.8 s each instead of 1.6 s in float32)."""
    if precision != "auto":
        return precision
    native = device_type == "cuda" or (device_type == "cpu" and cpu_has_native_bfloat16())
    return "bfloat16" if native else "float32"


def _run_precision(precision: str, device_type: str) -> str:
    resolved = resolve_precision(precision, device_type)
    if resolved == "bfloat16" and device_type == "cpu" and not cpu_has_native_bfloat16():
        logger.warning("bfloat16 on a CPU without avx512_bf16 or amx_bf16 is emulated: slower than float32")
    logger.info("forward pass in %s (--precision %s)", resolved, precision)
    return resolved


@functools.lru_cache(maxsize=4)
def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags list ``avx512_bf16`` or ``amx_bf16`` (False where ``cpuinfo`` cannot be read)."""
    try:
        flags = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``cfg.precision`` (see `resolve_precision`); None = no autocast."""
    _, dtype = resolve_device(device.type, resolve_precision(cfg.precision, device.type))
    return None if dtype == torch.float32 else dtype


HEAD_MODULES = ("classifier", "score", "pooler")
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def base_config(base: str | Path, cfg: TrainConfig) -> PretrainedConfig:
    """The base model's config for a one-output sequence classifier, with ``cfg.attention_dropout`` applied.

    Dropout on the attention probabilities draws one random number per query-key pair in every layer; on a CPU that
    makes a training forward pass several times slower than one without it. None keeps the base model's rate.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base, num_labels=1)
    if cfg.attention_dropout is not None:
        for key in ATTENTION_DROPOUT_KEYS:
            if hasattr(config, key):
                setattr(config, key, cfg.attention_dropout)
    return config


def wrap_lora(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """Wrap a sequence classifier with a LoRA adapter; the classifier head is trained in full.

    With ``cfg.lora_top_layers = N`` only the top N transformer layers get adapters (the layers below stay as
    pretrained, which keeps features that transfer to unseen sources, and backpropagation stops above them); an
    encoder's pooler then sits outside the adapted layers and is trained in full with the head. None adapts all.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    depth = int(model.config.num_hidden_layers)
    top = cfg.lora_top_layers
    layers = None if top is None or top >= depth else list(range(depth - top, depth))
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    heads = [m for m in HEAD_MODULES if m in present and (m != "pooler" or layers is not None)]
    lcfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.target_modules),
                      layers_to_transform=layers, modules_to_save=heads)
    return get_peft_model(model, lcfg)


_LAYER_INDEX = re.compile(r"\.(?:layer|layers)\.(\d+)\.")


def silence_frozen_dropout(model: torch.nn.Module) -> None:
    """Set the rate of every dropout in the embeddings and in the layers below a PEFT adapter's to 0.

    Those parts are frozen, so they then run in training as at inference, and their dropout's random draws (on a
    CPU most of a training forward pass, see `base_config`) are left out; the adapted layers and the head keep theirs.
    The adapted layers are the adapter's ``layers_to_transform``, fresh or loaded; with none (every layer adapted, or
    no adapter) nothing is frozen and nothing changes.
    """
    configs = getattr(model, "peft_config", {})
    adapted = next(iter(configs.values())).layers_to_transform if configs else None
    if adapted is None:
        return
    adapted = [adapted] if isinstance(adapted, int) else list(adapted)
    for name, module in model.named_modules():
        index = _LAYER_INDEX.search(name)
        frozen = int(index.group(1)) not in adapted if index else "embeddings" in name
        if isinstance(module, torch.nn.Dropout) and frozen:
            module.p = 0.0


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warmup, then linear decay to 0 at step ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))


def _steps_that_fit(step: int, total: int, elapsed: float, budget: float) -> int:
    """``total``, or the steps that fit in the time budget at the mean pace so far when those are fewer.

    Only a run that would overrun is shortened (and then anneals its learning rate before the budget stops it), so
    the schedule of a run that fits its budget depends on the step count alone, not on the machine's speed; a run
    slowed for a while gets its full plan back once its mean pace fits again.
    """
    pace = elapsed / max(1, step)
    return min(total, step + max(0, int((budget - elapsed) / pace)))


def _epochs(units: Sequence[Unit], cfg: TrainConfig, rng: random.Random) -> Iterator[list[Unit]]:
    epoch = 0
    while epoch < math.ceil(cfg.epochs):
        batches = make_batches(units, cfg.batch_size, rng)
        if epoch + 1 > cfg.epochs:  # fractional last epoch
            batches = batches[: int(len(batches) * (cfg.epochs - epoch))]
        yield from batches
        epoch += 1


def _optimizer_step(model: torch.nn.Module, batch: Sequence[Unit], params: list[torch.nn.Parameter],
                    opt: torch.optim.Optimizer, pad_id: int, device: torch.device, cfg: TrainConfig) -> float:
    """One step on ``batch`` (gradients clipped to norm 1 over ``params``); the batch's loss."""
    loss = batch_loss(model, batch, pad_id, device, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return float(loss.detach())


def head_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable parameters of the head (classifier / score layer and an encoder's pooler), not the encoder's."""
    return [p for name, p in model.named_parameters()
            if p.requires_grad and "lora_" not in name and any(f"{m}." in name for m in HEAD_MODULES)]


def probe_head(model: torch.nn.Module, units: Sequence[Unit], cfg: TrainConfig, *, pad_id: int,
               device: torch.device, progress: bool = True) -> float | None:
    """Linear-probe stage: ``cfg.probe_steps`` steps that train only `head_parameters`, the rest frozen.

    Its batches come from their own seeded stream, so the fine-tuning stage sees the same data order with or
    without a probe. The learning rate decays linearly from ``cfg.lr`` to 0. Returns the last loss (None: no steps).
    """
    head = head_parameters(model)
    if cfg.probe_steps <= 0 or not head:
        return None
    head_ids = {id(p) for p in head}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.AdamW(head, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, cfg.probe_steps, 0))
    batches = make_batches(units, cfg.batch_size, random.Random(f"probe-{cfg.seed}"))
    bar, value = _bar(min(cfg.probe_steps, len(batches)), progress, "probe"), None
    model.train()
    for batch in batches[: cfg.probe_steps]:
        value = _optimizer_step(model, batch, head, opt, pad_id, device, cfg)
        sched.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
    if bar is not None:
        bar.close()
    for p in frozen:
        p.requires_grad_(True)
    return value


def train_model(model: torch.nn.Module, units: Sequence[Unit], cfg: TrainConfig, *, pad_id: int,
                device: torch.device, on_checkpoint: Callable[[int], None] | None = None,
                progress: bool = True, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Run the optimisation loop.

    Args:
        model: a (LoRA-wrapped) sequence classifier with one label, on ``device``.
        units: encoded training units.
        cfg: knobs (epochs, max_steps, lr, batch size, weights, time budget, checkpoint period).
        pad_id: the tokenizer's pad id.
        device: where to run.
        on_checkpoint: called with the step number every ``cfg.checkpoint_every`` steps.
        progress: show a tqdm bar.
        clock: seconds for the time budget.

    Returns:
        A summary: steps, requested steps (what the epochs and ``max_steps`` ask for), planned steps (fewer than
        requested when the time budget shortened the run), seconds, final and mean loss, whether the time budget
        stopped it, and the probe stage's last loss and seconds (the time budget and ``seconds`` cover the
        fine-tuning stage, so the probe does not change its schedule), and the precision the forward pass ran in.
    """
    cfg = replace(cfg, precision=_run_precision(cfg.precision, device.type))
    rng = random.Random(cfg.seed)
    per_epoch = len(make_batches(units, cfg.batch_size, random.Random(cfg.seed)))
    total = int(per_epoch * cfg.epochs)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    probe_start = clock()
    probe_loss = probe_head(model, units, cfg, pad_id=pad_id, device=device, progress=progress)
    probe_seconds = round(clock() - probe_start, 1)
    start, step, ema, losses, stopped = clock(), 0, None, [], False
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * total)
    plan = total
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, plan, warmup))
    bar = _bar(total, progress, "train")
    model.train()
    for batch in _epochs(units, cfg, rng):
        if step >= plan:
            break
        if cfg.time_budget_s is not None and clock() - start > cfg.time_budget_s:
            stopped = True
            logger.warning("time budget of %.0f s reached at step %d of %d", cfg.time_budget_s, step, plan)
            break
        value = _optimizer_step(model, batch, params, opt, pad_id, device, cfg)
        step += 1
        if cfg.time_budget_s is not None and step >= max(1, warmup):
            fit = _steps_that_fit(step, total, clock() - start, cfg.time_budget_s)
            if fit < total and plan == total:
                logger.warning("at this pace the time budget allows %d of %d steps: annealing over those", fit, total)
            plan = fit
            if bar is not None:
                bar.total = plan
        sched.step()
        losses.append(value)
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if on_checkpoint is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            on_checkpoint(step)
    if bar is not None:
        bar.close()
    model.eval()
    return {"steps": step, "requested_steps": total, "planned_steps": plan, "seconds": round(clock() - start, 1),
            "final_loss_ema": ema, "mean_loss": sum(losses) / len(losses) if losses else None,
            "stopped_by_time_budget": stopped, "probe_final_loss": probe_loss,
            "probe_seconds": probe_seconds, "precision": cfg.precision}


def _bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=5.0)
