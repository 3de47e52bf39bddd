"""`trainlab evaluate`, `predict` and `export`: what a saved model does, on the Python API's evaluation,
Predictor and export."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainlab.cli.options import (
    DATA_KEYS,
    EXIT_OK,
    Output,
    add_checkpoint_options,
    add_data_options,
    add_output_options,
    cannot_write,
    given,
    path_argument,
    warn,
)
from trainlab.config import INPUT_STYLES
from trainlab.errors import TrainlabError

DATA_NOTE = "where the test images come from; flags not given: the checkpoint's own"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add evaluate, predict, export and calibrate to the CLI's subcommands, in that order."""
    add_evaluate_parser(commands)
    add_predict_parser(commands)
    add_export_parser(commands)
    add_calibrate_parser(commands)


def add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab evaluate`: a checkpoint on a test set, with a confusion matrix."""
    evaluate = commands.add_parser("evaluate", help="test a checkpoint on the test set")
    add_checkpoint_options(evaluate)
    evaluate.add_argument("--batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)")
    evaluate.add_argument(
        "--confusion-matrix",
        metavar="PNG",
        type=path_argument,
        help="where to draw the confusion matrix (default: in the run directory, else beside the "
        "checkpoint; a name not ending in .png: a warning)",
    )
    evaluate.add_argument(
        "--input-style",
        choices=INPUT_STYLES,
        help="how csv/folder pictures are read, as in predict: auto, photo or raw (default: raw for the "
        "checkpoint's own test pictures, auto for pictures the data flags name)",
    )
    add_data_options(evaluate, note=DATA_NOTE)
    add_output_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)


def add_predict_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab predict`: the class of image files or of one test image."""
    predict = commands.add_parser("predict", help="predict the class of images")
    add_checkpoint_options(predict)
    predict.add_argument(
        "images", nargs="*", metavar="IMAGE", type=path_argument, help="PNG/JPEG/... files of any size and mode"
    )
    predict.add_argument("--test-index", type=int, help="predict test-set image N and show its true class")
    predict.add_argument(
        "--top-k",
        type=int,
        default=3,
        help="how many classes to list (default: 3; more than the model's classes: a warning)",
    )
    predict.add_argument(
        "--input-style",
        choices=INPUT_STYLES,
        help="how a picture is made to look like the training images: auto (default: raw when it already "
        "looks like them, else photo), photo (background trimmed by its corner colour, object fitted and "
        "centred, polarity and background matched), raw (the whole frame resized, polarity kept)",
    )
    predict.add_argument(
        "--show-input",
        metavar="PNG",
        type=path_argument,
        help="draw each picture beside what the model received (a name not ending in .png: a warning)",
    )
    add_data_options(predict, note=DATA_NOTE)
    add_output_options(predict)
    predict.set_defaults(handler=cmd_predict)


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab export`: the model as a state_dict, safetensors, TorchScript or ONNX file."""
    export = commands.add_parser(
        "export", help="write the model as a state_dict, safetensors, TorchScript or ONNX file"
    )
    add_checkpoint_options(export)
    export.add_argument(
        "--format",
        required=True,
        choices=("state-dict", "safetensors", "torchscript", "onnx"),
        help="state-dict (the tutorial's model.pth), safetensors, or a TorchScript/ONNX graph that "
        "takes uint8 images and includes the preprocessing",
    )
    export.add_argument("--out", required=True, type=path_argument, help="output file")
    add_output_options(export)
    export.set_defaults(handler=cmd_export)


def add_calibrate_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab calibrate`: when a picture is unlike the training images, recorded in the checkpoint."""
    calibrate = commands.add_parser(
        "calibrate",
        help="record in a checkpoint when a picture is unlike its training images (training does it already)",
    )
    add_checkpoint_options(calibrate)
    calibrate.add_argument(
        "--unlike-rate",
        type=float,
        default=0.04,
        help="share of held-out images (the validation split, else the test set) flagged (default: 0.04)",
    )
    add_data_options(calibrate, note="the data the checkpoint was trained on; flags not given: the checkpoint's own")
    add_output_options(calibrate)
    calibrate.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace, out: Output) -> int:
    from trainlab.inference.calibrate import calibrate_checkpoint
    from trainlab.inference.predictor import unlike_figures

    written = calibrate_checkpoint(
        args.checkpoint, args.unlike_rate, given(args, DATA_KEYS), not args.no_download, args.trust_model_code
    )
    for path, record in written:
        out.say(
            f"{path}: flags {record['flagged']:.1%} of its {record['held_out_images']:,} {record['held_out']} images "
            f"as unlike the training images (each of its 4 checks alone: {record['check_rate']:.1%})"
        )
    out.result({"calibrated": [{"checkpoint": str(path), **unlike_figures(record)} for path, record in written]})
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, out: Output) -> int:
    from trainlab.fileio import check_replaceable
    from trainlab.inference.evaluation import evaluate_checkpoint
    from trainlab.reports.classification import format_per_class
    from trainlab.reports.console import format_test_block
    from trainlab.reports.plots import confusion_matrix_plot

    if args.confusion_matrix:  # a file that cannot be written is refused before the evaluation, not after
        check_replaceable(args.confusion_matrix, "PNG image")
    result = evaluate_checkpoint(
        args.checkpoint,
        model=args.model,
        device=args.device or "auto",
        batch_size=args.batch_size,
        trust_pickle=args.trust_pickle,
        trust_model_code=args.trust_model_code,
        download=not args.no_download,
        input_style=args.input_style,
        **given(args, DATA_KEYS),
    )
    for note in result.notes:  # csv/folder data: in memory or streamed, cached or decoded
        out.say(note)
    out.say(f"Evaluating {result.checkpoint} on {result.samples} test images")
    out.say(format_test_block(result.accuracy, result.loss))
    out.say(format_per_class(result.per_class))
    plot_path = Path(args.confusion_matrix) if args.confusion_matrix else default_report_path(result.checkpoint)
    try:
        confusion_matrix_plot(result.confusion_matrix, result.classes, plot_path)
    except OSError as exc:
        raise cannot_write(plot_path, exc) from None
    out.say(f"Confusion matrix: {plot_path}")
    out.result({**result.to_dict(), "confusion_matrix_png": str(plot_path)})
    return EXIT_OK


def default_report_path(checkpoint: Path) -> Path:
    """confusion_matrix.png in the checkpoint's run directory, else <name>_confusion_matrix.png beside the file."""
    from trainlab.layout import CHECKPOINT_FOLDER, CONFUSION_FILE

    if checkpoint.parent.name == CHECKPOINT_FOLDER:
        return checkpoint.parent.parent / CONFUSION_FILE
    return checkpoint.with_name(f"{checkpoint.stem}_{CONFUSION_FILE}")


def cmd_predict(args: argparse.Namespace, out: Output) -> int:
    from trainlab.checkpoint import load_checkpoint
    from trainlab.inference import Predictor

    if (args.test_index is None) == (not args.images):
        raise TrainlabError("give image files or --test-index N (one of the two)")
    if args.top_k < 1:
        raise TrainlabError(f"--top-k must be >= 1, got {args.top_k}")
    if any(not image.strip() for image in args.images):  # image names after the options skip argparse's type
        raise TrainlabError("IMAGE: expected a file name, got an empty string")
    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    device = "cpu"
    if args.device is not None:
        from trainlab.engine.runtime import resolve_device

        device = resolve_device(args.device)
    predictor = Predictor.from_checkpoint(
        loaded, model=args.model, device=device, trust_model_code=args.trust_model_code
    )
    if args.top_k > len(predictor.classes):
        warn(
            args,
            f"--top-k {args.top_k} is more than the model's {len(predictor.classes)} classes; listing all "
            f"{len(predictor.classes)}",
        )
    if args.test_index is not None:
        if args.show_input or args.input_style is not None:
            raise TrainlabError(
                "--test-index takes a test image as it is; --show-input and --input-style are for files"
            )
        return predict_test_image(args, out, loaded, predictor)
    if args.show_input:  # a file that cannot be written is refused before predicting, not after printing
        from trainlab.fileio import check_replaceable

        check_replaceable(args.show_input, "PNG image")
    inputs = predictor.read_files(args.images, args.input_style or "auto")
    for note in predictor.notes:  # where the training images' look came from, when a style needed it
        out.say(note)
    predictions = predictor.predict_inputs(inputs, args.top_k)
    for path, prediction in zip(args.images, predictions, strict=True):
        say_prediction(out, prediction, f"{path}: " if len(args.images) > 1 else "")
    result = {
        "predictions": [{"image": str(p), **pred.to_dict()} for p, pred in zip(args.images, predictions, strict=True)]
    }
    if args.show_input:
        from trainlab.reports.plots import model_input_plot

        try:
            shown = model_input_plot(inputs, predictions, [str(path) for path in args.images], args.show_input)
        except OSError as exc:
            raise cannot_write(Path(args.show_input), exc) from None
        out.say(f"Model input: {shown}")
        result["show_input_png"] = str(shown)
    out.result(result)
    return EXIT_OK


def say_prediction(out: Output, prediction, prefix: str) -> None:
    """One picture's human lines: the class, the top-k, the input style, and whether it is unlike the training data."""
    from trainlab.inference.predictor import UNLIKE_SENTENCE

    out.say(f'{prefix}Predicted: "{prediction.label}" ({100 * prediction.probability:.1f}%)')
    for rank, (name, probability) in enumerate(prediction.top, start=1):
        out.say(f"  {rank}. {name:<12} {100 * probability:5.1f}%")
    if prediction.input_style != "raw":  # raw is the picture as it is: nothing to say
        out.say(f"  input style {prediction.input_style}: {prediction.input_reason}")
    if prediction.unlike_training:
        out.say(f"  {UNLIKE_SENTENCE}")


def predict_test_image(args: argparse.Namespace, out: Output, loaded, predictor) -> int:
    """predict --test-index N: the tutorial's `Predicted: "...", Actual: "..."` for one test image."""
    from trainlab.inference.evaluation import load_test_split
    from trainlab.inference.predictor import UNLIKE_SENTENCE

    test, notes = load_test_split(loaded, predictor, given(args, DATA_KEYS), not args.no_download, "raw")
    for note in notes:
        out.say(note)
    if not 0 <= args.test_index < len(test):
        raise TrainlabError(f"--test-index must be between 0 and {len(test) - 1}, got {args.test_index}")
    prediction = predictor.predict(test.images[args.test_index : args.test_index + 1], args.top_k)[0]
    actual = test.classes[int(test.labels[args.test_index])]
    out.say(f'Predicted: "{prediction.label}", Actual: "{actual}"')
    if prediction.unlike_training:
        out.say(UNLIKE_SENTENCE)
    out.result({**prediction.to_dict(), "test_index": args.test_index, "actual": actual})
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from trainlab.checkpoint import load_checkpoint
    from trainlab.inference import Predictor
    from trainlab.inference.export import export_model

    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    predictor = Predictor.from_checkpoint(loaded, model=args.model, trust_model_code=args.trust_model_code)
    try:
        path = export_model(predictor, args.format, args.out, source=loaded.path)
    except OSError as exc:
        raise cannot_write(args.out, exc) from None
    out.say(f"Wrote {args.format} to {path}")
    out.result({"format": args.format, "out": str(path)})
    return EXIT_OK
