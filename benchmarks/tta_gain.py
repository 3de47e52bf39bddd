"""What `--tta flip` adds to a finished run: its checkpoint's accuracy with and without the flip (issue 15, item 5).

    python benchmarks/tta_gain.py RUN_DIR

Loads the checkpoint that `trainlab evaluate RUN_DIR` loads (best.pt with a validation split, else last.pt),
rebuilds the run's validation split the way training made it (the same fraction and seed) and evaluates that
split and the test set, in process and in fp32, through the model alone and through its flip-averaged wrapper.
"""

from __future__ import annotations

import argparse

from trainlab import Predictor, TrainConfig, load_dataset
from trainlab.checkpoint import unwrap_model
from trainlab.config import read_config_file
from trainlab.data.memory import stratified_split
from trainlab.engine.loop import evaluate
from trainlab.engine.losses import make_loss
from trainlab.models.tta import FlipAveraged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trainlab run directory")
    args = parser.parse_args()
    config = TrainConfig.from_dict(read_config_file(f"{args.run}/config.toml"))
    data = load_dataset(config, download=False)
    predictor = Predictor.from_checkpoint(args.run)
    net = unwrap_model(predictor.model)
    loss = make_loss("cross-entropy", len(predictor.classes), 0.0)
    splits = [("test", data.test)]
    if config.val_split:
        splits.insert(0, ("validation", stratified_split(data.train, config.val_split, config.seed)[1]))
    print("| split | without TTA | with --tta flip | gain (points) |")
    print("| --- | ---: | ---: | ---: |")
    for name, split in splits:
        plain = evaluate(net, split, loss, predictor.preprocessing, config.eval_batch_size)["accuracy"]
        flipped = evaluate(FlipAveraged(net), split, loss, predictor.preprocessing, config.eval_batch_size)["accuracy"]
        print(f"| {name} | {100 * plain:.2f}% | {100 * flipped:.2f}% | {100 * (flipped - plain):+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
