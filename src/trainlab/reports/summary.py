"""Model summaries: the named_parameters table and totals."""

from __future__ import annotations

from torch import nn


def parameter_table(model: nn.Module) -> tuple[str, dict[str, int]]:
    """A text table of named_parameters (name, shape, count, trainable) and the totals."""
    rows = [(name, "x".join(map(str, p.shape)), p.numel(), p.requires_grad) for name, p in model.named_parameters()]
    total = sum(count for _, _, count, _ in rows)
    trainable = sum(count for _, _, count, grad in rows if grad)
    width = max([len("name")] + [len(name) for name, *_ in rows])
    lines = [f"{'name':<{width}}  {'shape':<12} {'count':>10}  trainable"]
    lines += [f"{name:<{width}}  {shape:<12} {count:>10,}  {'yes' if grad else 'no'}" for name, shape, count, grad in rows]
    lines.append(f"Total parameters: {total:,}")
    lines.append(f"Trainable parameters: {trainable:,}")
    return "\n".join(lines), {"total_parameters": total, "trainable_parameters": trainable}
