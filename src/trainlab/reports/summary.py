"""Model summaries: the named_parameters table and totals."""

from __future__ import annotations

from torch import nn

from trainlab.errors import TrainlabError
from trainlab.models import is_out_of_memory


def parameter_table(model: nn.Module) -> tuple[str, dict[str, int]]:
    """A text table of named_parameters (name, shape, count, trainable) and the totals."""
    rows = [(name, "x".join(map(str, p.shape)), p.numel(), p.requires_grad) for name, p in model.named_parameters()]
    total = sum(count for _, _, count, _ in rows)
    trainable = sum(count for _, _, count, grad in rows if grad)
    width = max([len("name")] + [len(name) for name, *_ in rows])
    lines = [f"{'name':<{width}}  {'shape':<12} {'count':>10}  trainable"]
    lines += [
        f"{name:<{width}}  {shape:<12} {count:>10,}  {'yes' if grad else 'no'}" for name, shape, count, grad in rows
    ]
    lines.append(f"Total parameters: {total:,}")
    lines.append(f"Trainable parameters: {trainable:,}")
    return "\n".join(lines), {"total_parameters": total, "trainable_parameters": trainable}


def layer_table(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[str, dict[str, int]]:
    """Output shape and forward FLOPs (and MACs = FLOPs / 2) of each leaf layer for one input of input_size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple[int, ...]] = {}
    leaves = [(name, module) for name, module in model.named_modules() if name and not list(module.children())]
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
        for name, module in leaves
    ]
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            output = model(torch.zeros(1, *input_size))
    except (MemoryError, RuntimeError) as exc:  # e.g. an input too small for its poolings, or too large to hold
        shape = "x".join(map(str, input_size))
        reason = "it does not fit in memory" if is_out_of_memory(exc) else str(exc).strip().splitlines()[0]
        message = f"the model cannot run on one {shape} input: {reason}; try another --input-size"
        raise TrainlabError(message) from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    counts = counter.get_flop_counts()
    total = int(sum(counts.get("Global", {}).values()))
    width = max([len("layer")] + [len(name) for name, _ in leaves])
    lines = [f"{'layer':<{width}}  {'type':<18} {'output shape':<18} {'FLOPs':>14} {'MACs':>14}"]
    for name, module in leaves:
        flops = int(sum(counts.get(f"{type(model).__name__}.{name}", {}).values()))
        shape = "x".join(map(str, shapes.get(name, ())))
        lines.append(f"{name:<{width}}  {type(module).__name__:<18} {shape:<18} {flops:>14,} {flops // 2:>14,}")
    lines.append(f"Output shape: {'x'.join(map(str, output.shape))}")
    lines.append(f"Forward FLOPs per image: {total:,} (MACs: {total // 2:,})")
    return "\n".join(lines), {"forward_flops": total, "forward_macs": total // 2}
