"""The ViT benchmark runs the shipped module and reports what the README quotes."""

from __future__ import annotations

from benchmarks.bench_vit import make_batch, make_module, run


def test_bench_vit_reports_ratios_and_memory() -> None:
    result = run((16,), warmup=0, rounds=1)["16"]
    assert result["patch_size"] == 16 and result["ratio"] > 0 and result["ratio_min"] > 0
    assert result["ratio_last_layer"] > 0 and result["ratio_cpu_last_layer"] > 0
    assert set(result["step_rss_mb"]) == {"plain", "hint", "hint_last_layer"}
    for layer in (None, -1):
        module = make_module(16, grounded=True, layer=layer)
        loss = module.training_step(make_batch(16), 0)
        assert loss.requires_grad and module.objectives is not None
        assert getattr(module.train_method, "layer", None) == layer
