from trainlab import TrainConfig, fit, load_dataset


def test_tiny_run_learns_the_generated_bands(tiny_data, tmp_path):
    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(TrainConfig(optimizer="adam", epochs=3, batch_size=32), data=data, run_dir=tmp_path / "run")
    assert summary["test_accuracy"] >= 0.9
