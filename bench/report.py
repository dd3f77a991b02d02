"""Markdown rows the accuracy benchmarks print (figures from inference.metrics.regression_metrics)."""


def metrics_row(label: str, m: dict) -> str:
    """| label | n | RMS | MAE | bias | > 5 deg off | > 10 deg off |"""
    return (
        f"| {label} | {m['n']} | {m['rms']:.2f} | {m['mae']:.2f} | {m['bias']:+.2f} | "
        f"{100 * m['frac_gt5']:.1f}% | {100 * m['frac_gt10']:.2f}% |"
    )
