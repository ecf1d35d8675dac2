"""A small recorded grid made by hand from real dev labels, for tests of the replay and of seed racing."""

import json

import numpy as np


def write_grid(path, labels, differences: dict[float, int], seeds=3, epochs=2, noise=10, dense_wrong=80):
    """Write a grid file in ``benchmarks.record_grid``'s format.

    Args:
        labels: real dev labels.
        differences: sparsity -> net examples the ticket gets right beyond the dense model on every seed
            (negative: worse); the ticket also swaps ``noise`` right and wrong answers, so small differences are
            noise and large ones are not.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(0)
    dense = []
    for _ in range(seeds):
        wrong = rng.choice(len(labels), dense_wrong, replace=False)
        predictions = labels.copy()
        predictions[wrong] = 1 - predictions[wrong]
        dense.append(predictions)
    points = []
    for sparsity, net in sorted({0.0: 0, **differences}.items()):
        per_seed = {}
        for seed in range(seeds):
            predictions = dense[seed].copy()
            if sparsity > 0:
                wrong, right = np.flatnonzero(predictions != labels), np.flatnonzero(predictions == labels)
                fix, brk = noise + max(net, 0), noise + max(-net, 0)
                predictions[wrong[:fix]] = labels[wrong[:fix]]
                predictions[right[-brk:]] = 1 - labels[right[-brk:]]
            score = float((predictions == labels).mean())
            per_seed[str(seed)] = [{"epoch": e, "dev_score": score - 0.01 * (epochs - e), "train_loss": 0.7 - 0.1 * e,
                                    "predictions": predictions.tolist()} for e in range(1, epochs + 1)]
        points.append({"sparsity": sparsity, "counts": {"achieved_sparsity": sparsity, "heads_kept": 72 - int(72 * sparsity),
                                                        "total_heads": 72, "ffn_kept": 6, "total_ffn": 6},
                       "seeds": per_seed})
    path.write_text(json.dumps({"task": "mrpc", "labels": labels.tolist(), "seeds": list(range(seeds)),
                                "finetune": {"epochs": epochs}, "points": points}))
    return path
