"""No single modality's obvious summary decides `habitable`; together they nearly do.

A plain logistic regression (numpy gradient descent) on hand-made summaries of each modality:
each alone stays clearly short of perfect, the concatenation beats the best of them.
"""

import numpy as np

from astrobio.schema import PARAM_NAMES, wavelength_grid


def params_summary(s):
    p = s.params.astype(np.float64)
    col = {name: p[i] for i, name in enumerate(PARAM_NAMES)}
    return [np.log(col["pl_insol"]), np.log(col["pl_insol"]) ** 2, np.log(col["pl_rade"]),
            np.log(col["pl_bmasse"]), col["st_teff"] / 1000, col["pl_orbeccen"]]


def climate_summary(s):
    surface, liquid = s.climate[0, 0], s.climate[3, 0]
    return [surface.mean() / 100, surface.max() / 100, surface.min() / 100, liquid.mean(),
            (liquid > 0).mean(), np.log10(s.climate[1].mean() + 1e-12), s.climate[2].mean()]


BANDS_UM = ((1.3, 1.45), (2.6, 2.8), (3.2, 3.4), (4.2, 4.4), (6.0, 6.6), (9.3, 9.9),
            (0.74, 0.78))


def spectrum_summary(s):
    grid = wavelength_grid(s.spectrum.shape[0])
    m = s.spectrum_mask
    base = float(np.median(s.spectrum[m])) if m.any() else 1.0
    out = [np.log10(max(base, 1e-3))]
    for lo, hi in BANDS_UM:
        sel = m & (grid >= lo) & (grid <= hi)
        out.append((s.spectrum[sel].mean() - base) / max(base, 1e-3) if sel.any() else 0.0)
    return out


def graph_summary(s):
    n, e = s.node_features.shape[0], s.edge_index.shape[1]
    return [np.log1p(n), np.log1p(e), s.edge_attr[:, 3].mean() if e else 0.0,
            s.edge_attr[:, 2].mean() if e else 0.0]


def fit(features, y, steps=4000, lr=1.0):
    """(accuracy, mean log-loss) of a logistic regression fitted to all of `features`."""
    z = (features - features.mean(0)) / (features.std(0) + 1e-9)
    z = np.c_[z, np.ones(len(z))]
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        w -= lr * z.T @ (p - y) / len(y)
    logit = z @ w
    loss = np.mean(np.logaddexp(0.0, logit) - y * logit)
    return float(((logit > 0) == (y > 0.5)).mean()), float(loss)


def test_no_single_modality_suffices_but_the_combination_does(shared_samples):
    y = np.array([s.habitable for s in shared_samples], np.float64)
    summaries = {name: np.array([f(s) for s in shared_samples], np.float64)
                 for name, f in (("params", params_summary), ("climate", climate_summary),
                                 ("spectrum", spectrum_summary), ("graph", graph_summary))}
    single = {name: fit(x, y) for name, x in summaries.items()}
    combined = fit(np.concatenate(list(summaries.values()), axis=1), y)
    print(single, combined)
    best_accuracy = max(a for a, _ in single.values())
    best_loss = min(loss for _, loss in single.values())
    assert best_accuracy <= 0.95, single
    assert combined[0] > best_accuracy, (single, combined)
    assert combined[1] < 0.75 * best_loss, (single, combined)  # far more certain together
    majority = max(y.mean(), 1.0 - y.mean())
    assert combined[0] >= majority + 0.15
