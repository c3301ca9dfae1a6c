"""Every script under demo/ and tools/ (except train_net.py) answers --help."""

from tests.cli_helpers import finish_cli, start_cli

EXPECTED_OPTIONS = {
    "demo/demo.py": ["--config-file", "--input", "--video-input", "--webcam", "--output",
                     "--confidence-threshold", "--opts", "--batch-size", "--save-raw"],
    "demo/app.py": ["--config-file", "--hf-model", "--port", "--score-threshold", "--opts"],
    "tools/analyze_model.py": ["--config-file", "--tasks", "--num-inputs"],
    "tools/evaluate_pq_for_semantic_segmentation.py": ["--dataset-name", "--json-file"],
    "tools/convert-torchvision-to-d2.py": ["input", "output"],
    "tools/convert-pretrained-swin-model-to-d2.py": ["input", "output"],
    "tools/export_model.py": ["--config-file", "--format", "--output", "--height", "--width",
                              "--dynamic", "--opset"],
    "tools/visualize_data.py": ["--config-file", "--source", "--dataset", "--num", "--output"],
    "tools/visualize_json_results.py": ["--input", "--output", "--dataset", "--conf-threshold"],
    "tools/dataset_stats.py": ["--config-file", "--dataset", "--json"],
    "tools/convert_to_coco_panoptic.py": ["--semantic-dir", "--instance-dir", "--instances-json",
                                          "--classes", "--thing-classes", "--output"],
}  # fmt: skip


def test_help_of_every_tool():
    # Started together: most of the time is spent importing torch.
    processes = {script: start_cli(script, ["--help"]) for script in EXPECTED_OPTIONS}
    for script, process in processes.items():
        out = finish_cli(process)
        assert "usage:" in out, script
        missing = [opt for opt in EXPECTED_OPTIONS[script] if opt not in out]
        assert not missing, f"{script} --help lacks {missing}"
